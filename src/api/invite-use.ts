import { claimInvite, findInviteBySecret, getInvite, markInviteUsed, releaseInvite, type Invite } from '../db/invites';
import type { Sql } from '../db/sql';
import { ApiError } from './errors';

/**
 * Using an invite link, for the invite pages and the OAuth callback: what a link that cannot be used
 * answers (stable codes), and one use of it (claim, then used or released).
 */

const GONE: Record<Exclude<Invite['status'], 'pending'>, ApiError> = {
  used: new ApiError(
    410,
    'invite_used',
    'This invite link was already used. Ask the person who sent it for a new one if you need to connect again.',
  ),
  revoked: new ApiError(410, 'invite_revoked', 'This invite link was withdrawn by the person who sent it. Ask them for a new one.'),
  expired: new ApiError(410, 'invite_expired', 'This invite link has expired. Ask the person who sent it for a new one.'),
};

/** Says nothing about whether the link ever existed: a mistyped link and a guessed one look alike. */
export const unknownInvite = () => new ApiError(404, 'invite_not_found', 'This invite link is not valid. Check that you copied all of it.');

/** The invite behind a link, if it can still be used; otherwise the 404 or 410 that says why not. */
export async function usableInvite(sql: Sql, secret: string): Promise<Invite> {
  const invite = await findInviteBySecret(sql, secret);
  if (!invite) throw unknownInvite();
  if (invite.status !== 'pending') throw GONE[invite.status];
  return invite;
}

export interface InviteUse {
  /** The credential was adopted: the link is used up. */
  markUsed(): Promise<void>;
  /** The credential was refused (or never obtained): the link stays usable. */
  release(): Promise<void>;
}

/**
 * Claims the invite for one use, or throws why it cannot be used: 410 when it is used, revoked or
 * expired, 409 `invite_in_use` while another use of it is in progress.
 */
export async function claimInviteForUse(sql: Sql, inviteId: string): Promise<InviteUse> {
  const claim = await claimInvite(sql, inviteId);
  if (!claim) {
    const invite = await getInvite(sql, inviteId);
    if (!invite) throw unknownInvite();
    if (invite.status !== 'pending') throw GONE[invite.status];
    throw new ApiError(409, 'invite_in_use', 'This invite link is being used right now. Wait a minute, then open it again.');
  }
  return {
    markUsed: () => markInviteUsed(sql, inviteId, claim),
    release: () => releaseInvite(sql, inviteId, claim),
  };
}
