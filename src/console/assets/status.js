/**
 * What a connection card says and offers, as pure functions of the connection (as GET
 * /v1/connections/:id returns it), the latest run's counts and the server's model (model.js: the
 * action rules of src/domain/connection.ts and the providers). Unit-tested in the browser test.
 */

const dateTime = new Intl.DateTimeFormat('en-GB', { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' });
const timeOnly = new Intl.DateTimeFormat('en-GB', { hour: '2-digit', minute: '2-digit' });
const number = new Intl.NumberFormat('en-US');

/** "2 Dec, 14:05" */
export const formatDateTime = (iso) => dateTime.format(new Date(iso));

/** "14:05" today, "3 Dec, 09:00" on another day. */
export function formatUntil(iso, now = Date.now()) {
  const d = new Date(iso);
  return d.toDateString() === new Date(now).toDateString() ? timeOnly.format(d) : dateTime.format(d);
}

/** "just now", "5 min ago", "3 h ago", "2 days ago", then the date. */
export function formatAgo(iso, now = Date.now()) {
  const s = Math.max(0, (now - Date.parse(iso)) / 1000);
  if (s < 60) return 'just now';
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  if (s < 7 * 86400) return `${Math.floor(s / 86400)} day${s < 2 * 86400 ? '' : 's'} ago`;
  return `on ${formatDateTime(iso)}`;
}

export const formatCount = (n) => number.format(n);

/** "pullRequests" → "pull requests" */
export const resourceLabel = (resource) => resource.replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase();

/** "1 h 5 min", "42 s" */
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 ? ` ${s % 60} s` : ''}`;
  if (s < 86400) return `${Math.floor(s / 3600)} h${Math.floor((s % 3600) / 60) ? ` ${Math.floor((s % 3600) / 60)} min` : ''}`;
  return `${Math.floor(s / 86400)} d${Math.floor((s % 86400) / 3600) ? ` ${Math.floor((s % 86400) / 3600)} h` : ''}`;
}

/** Why access was lost, in plain words, from `lastError`. */
function lostAccess(error, displayName) {
  if (!error) return 'access was lost';
  const reason =
    {
      refresh_failed: `${displayName} refused the refresh token`,
      token_revoked: `${displayName} rejected the access token`,
      oauth_client_invalid: `${displayName} refused the OAuth consumer`,
      no_credentials: 'no credential is stored',
    }[error.code] ?? error.message.replace(/\.$/, '');
  return `${reason} on ${formatDateTime(error.at)}`;
}

/**
 * The card's status line: `{ text, tone }`, tone one of ok | busy | wait | error | muted.
 * `run` is the running run's `{ counts }`, when known (events or GET …/runs).
 */
export function describeStatus(conn, { providers, run, now = Date.now() }) {
  const displayName = providers[conn.provider]?.displayName ?? conn.provider;
  switch (conn.status) {
    case 'provisioning':
      return { tone: 'busy', text: 'Setting up…' };
    case 'awaiting_credentials':
      return { tone: 'muted', text: 'Waiting for credentials' };
    case 'needs_reconnect':
      return { tone: 'error', text: `Needs reconnect: ${lostAccess(conn.lastError, displayName)}` };
    case 'paused':
      return { tone: 'muted', text: 'Paused' };
    case 'disconnected':
      return { tone: 'muted', text: 'Disconnected' };
    case 'active':
      break;
    default:
      return { tone: 'muted', text: conn.status };
  }
  const sync = conn.syncState ?? { state: 'idle' };
  if (sync.state === 'running') {
    const label = resourceLabel(sync.resource);
    const n = run?.counts?.[sync.resource];
    return { tone: 'busy', text: n === undefined ? `Syncing ${label}…` : `Syncing ${label}: ${formatCount(n)} so far` };
  }
  if (sync.state === 'rate_limited') return { tone: 'wait', text: `Waiting for the rate limit until ${formatUntil(sync.until, now)}` };
  if (sync.state === 'provider_unavailable')
    return { tone: 'wait', text: `${displayName} unavailable, retrying at ${formatUntil(sync.until, now)}` };
  if (!conn.lastSyncAt) return { tone: 'ok', text: 'Connected · first sync pending' };
  const synced = `Connected · last synced ${formatAgo(conn.lastSyncAt, now)}`;
  // Still active, but the last run failed (a provider error, not lost access).
  if (conn.lastError) return { tone: 'wait', text: `${synced} · last run failed: ${conn.lastError.message}` };
  return { tone: 'ok', text: synced };
}

/**
 * The buttons a connection's status allows, in display order, from the API's own rules
 * (`ALLOWED`): Connect / Reconnect start OAuth or open the token form, by the provider's kind.
 */
export function availableActions(conn, { allowed, providers }) {
  const may = (action) => (allowed[action] ?? []).includes(conn.status);
  const oauth = providers[conn.provider]?.auth === 'oauth2';
  const connectAction = oauth ? 'authorize' : 'set_credentials';
  const actions = [];
  if (conn.status === 'awaiting_credentials' && may(connectAction)) actions.push('connect');
  if (conn.status === 'needs_reconnect' && may(connectAction)) actions.push('reconnect');
  if (may('sync')) actions.push('sync');
  if (may('pause')) actions.push('pause');
  if (may('resume')) actions.push('resume');
  // An invite lets the provider account's admin connect it: offered while it could take a credential.
  if (may('set_credentials')) actions.push('invite');
  if (may('disconnect')) actions.push('disconnect');
  return actions;
}
