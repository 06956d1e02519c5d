/**
 * Every ApplicationFailure type the workflow and activities throw; the API maps them onto HTTP
 * errors and the workflow onto connection states. Pure data: the workflow imports this file.
 */
export const FailureTypes = {
  /** An action the connection's status does not allow; details[0] is the stable error code. */
  refused: 'ActionRefused',
  /** An update whose arguments are malformed (a validator's refusal). */
  badRequest: 'BadRequest',
  invalidCredentials: 'InvalidCredentials',
  authLost: 'AuthLost',
  providerUnavailable: 'ProviderUnavailable',
  /**
   * The provider answered something we must not act on (a redirect, a link to another origin):
   * final, not retried, and the connection stays active (it is no access problem).
   */
  providerProtocol: 'ProviderProtocol',
  rateLimited: 'RateLimited',
  /** A run that committed no page for too long. */
  stalled: 'Stalled',
  connectionMissing: 'ConnectionMissing',
  /** A sync step naming no resource of the connection's provider. */
  unknownResource: 'UnknownResource',
} as const;

export type FailureType = (typeof FailureTypes)[keyof typeof FailureTypes];
