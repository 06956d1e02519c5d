import { ApplicationFailure } from '@temporalio/activity';
import { ApplicationFailureCategory } from '@temporalio/common';
import { AuthLostError } from '../credentials/access';
import { ProviderError } from '../providers/errors';
import { StalledError } from '../sync/context';
import { FailureTypes } from '../domain/failures';

/** Pure: how long to wait after the n-th (1-based) consecutive rate-limit answer with no header. */
export function rateLimitBackoffMs(attempt: number, baseMs = 10_000, capMs = 10 * 60_000): number {
  return Math.min(capMs, baseMs * 2 ** Math.max(0, attempt - 1));
}

/**
 * Maps what went wrong to the failure Temporal should act on: lost access is final and handed to
 * the workflow; rate limits wait as long as the provider asked (an expected, benign wait);
 * everything else is retried by the activity's retry policy.
 */
/** How long a rate-limited request must wait: what the provider said, else exponential backoff. */
export function rateLimitWaitMs(err: ProviderError, attempt: number, backoffBaseMs?: number): number {
  return err.retryAfterMs ?? rateLimitBackoffMs(attempt, backoffBaseMs);
}

export function toActivityFailure(err: unknown, attempt: number, backoffBaseMs?: number): unknown {
  if (err instanceof StalledError) {
    return ApplicationFailure.create({ type: FailureTypes.stalled, message: err.message, nonRetryable: true });
  }
  if (err instanceof AuthLostError) {
    return ApplicationFailure.create({ type: FailureTypes.authLost, message: err.message, details: [err.code], nonRetryable: true });
  }
  if (err instanceof ProviderError) {
    if (err.kind === 'rate_limited') {
      return ApplicationFailure.create({
        type: FailureTypes.rateLimited,
        message: err.message,
        nextRetryDelay: rateLimitWaitMs(err, attempt, backoffBaseMs),
        category: ApplicationFailureCategory.BENIGN,
      });
    }
    if (err.kind === 'protocol') {
      return ApplicationFailure.create({ type: FailureTypes.providerProtocol, message: err.message, nonRetryable: true });
    }
    return ApplicationFailure.create({ type: FailureTypes.providerUnavailable, message: err.message });
  }
  return err;
}
