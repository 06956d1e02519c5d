import { ApplicationFailure } from '@temporalio/activity';
import { ApplicationFailureCategory } from '@temporalio/common';
import { AuthLostError } from '../credentials/access';
import { ProviderError } from '../providers/errors';
import { FailureTypes } from '../workflows/messages';

/** Pure: how long to wait after the n-th (1-based) consecutive rate-limit answer with no header. */
export function rateLimitBackoffMs(attempt: number, baseMs = 10_000, capMs = 10 * 60_000): number {
  return Math.min(capMs, baseMs * 2 ** Math.max(0, attempt - 1));
}

/**
 * Maps what went wrong to the failure Temporal should act on: lost access is final and handed to
 * the workflow; rate limits wait as long as the provider asked (an expected, benign wait);
 * everything else is retried by the activity's retry policy.
 */
export function toActivityFailure(err: unknown, attempt: number): unknown {
  if (err instanceof AuthLostError) {
    return ApplicationFailure.create({ type: FailureTypes.authLost, message: err.message, details: [err.code], nonRetryable: true });
  }
  if (err instanceof ProviderError) {
    if (err.kind === 'rate_limited') {
      return ApplicationFailure.create({
        type: FailureTypes.rateLimited,
        message: err.message,
        nextRetryDelay: err.retryAfterMs ?? rateLimitBackoffMs(attempt),
        category: ApplicationFailureCategory.BENIGN,
      });
    }
    return ApplicationFailure.create({ type: FailureTypes.providerUnavailable, message: err.message });
  }
  return err;
}
