/**
 * The console: sign in with a tenant API key, one card per connection with the actions its status
 * allows, live status from the event stream, run history and insight charts.
 */
import { ApiError, api, listAll, session } from './api.js';
import { FIGURES, figuresFor, renderFigure } from './charts.js';
import { byId, fill, h, table } from './dom.js';
import { subscribe } from './events.js';
import { ALLOWED, PROVIDERS } from './model.js';
import { availableActions, describeStatus, formatCount, formatDateTime, formatDuration, resourceLabel } from './status.js';

const model = { allowed: ALLOWED, providers: PROVIDERS };

/** Everything the page holds; reset on sign-out. */
const state = { cards: new Map(), stream: null, tenant: null };

// ---------------------------------------------------------------------------------------------
// Messages: a visible error banner (role=alert), a visible notice (role=status), and a visually
// hidden polite live region for status changes of cards.

function showError(message, retry) {
  const alert = byId('alert');
  fill(
    alert,
    h('span', {}, message),
    retry && h('button', { type: 'button', onclick: () => (hideError(), retry()) }, 'Try again'),
    h('button', { type: 'button', class: 'quiet', 'aria-label': 'Dismiss the error', onclick: hideError }, '×'),
  );
  alert.hidden = false;
}

function hideError() {
  byId('alert').hidden = true;
  fill(byId('alert'));
}

function showNotice(message) {
  const notice = byId('notice');
  fill(
    notice,
    h('span', {}, message),
    h('button', { type: 'button', class: 'quiet', 'aria-label': 'Dismiss', onclick: () => (notice.hidden = true) }, '×'),
  );
  notice.hidden = false;
}

function announce(message) {
  const live = byId('live');
  // Cleared first, so the same words said twice are announced twice.
  live.textContent = '';
  setTimeout(() => (live.textContent = message), 50);
}

/** What to do with an API failure: a refused key signs out, anything else is shown where it happened. */
function handleError(err, show = showError) {
  if (err instanceof ApiError && err.status === 401 && state.tenant) {
    signOut(`Signed out: ${err.message}`);
    return;
  }
  show(err instanceof ApiError ? err.message : `Something went wrong: ${err instanceof Error ? err.message : String(err)}`);
}

// ---------------------------------------------------------------------------------------------
// Sign in and out

function showSignIn(message) {
  byId('workspace').hidden = true;
  byId('sign-out').hidden = true;
  byId('tenant').hidden = true;
  byId('signin').hidden = false;
  const error = byId('signin-error');
  error.textContent = message ?? '';
  byId('api-key').setAttribute('aria-invalid', message ? 'true' : 'false');
  byId('api-key').focus();
}

async function signIn(event) {
  event.preventDefault();
  const input = byId('api-key');
  const key = input.value.trim();
  if (!key) return showSignIn('Paste your tenant API key.');
  session.signIn(key);
  input.value = '';
  await enter();
}

function signOut(message) {
  state.stream?.close();
  state.stream = null;
  state.tenant = null;
  state.cards.clear();
  fill(byId('connections'));
  session.signOut();
  hideError();
  byId('notice').hidden = true;
  showSignIn(message);
  announce(message ?? 'Signed out.');
}

/** With a key in the session: who we are, the connections, then live updates. */
async function enter() {
  const button = byId('signin-form').querySelector('button');
  button.disabled = true;
  try {
    state.tenant = await api('GET', '/v1/tenants/me');
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      session.signOut();
      showSignIn(err.message);
    } else {
      // The key may be fine and the API away: keep it, say why, offer to try again (or sign out).
      byId('signin').hidden = true;
      byId('sign-out').hidden = false;
      showError(err instanceof ApiError ? err.message : String(err), enter);
    }
    return;
  } finally {
    button.disabled = false;
  }
  byId('signin').hidden = true;
  byId('workspace').hidden = false;
  byId('sign-out').hidden = false;
  fill(byId('tenant'), 'Signed in as ', h('strong', {}, state.tenant.name));
  byId('tenant').hidden = false;
  hideError();
  await loadConnections();
  landFromOAuth();
  startStream();
  byId('main').focus();
}

// ---------------------------------------------------------------------------------------------
// Connections

async function loadConnections() {
  let items;
  try {
    items = await listAll('/v1/connections');
  } catch (err) {
    handleError(err, (m) => showError(`Could not load the connections: ${m}`, loadConnections));
    return;
  }
  if (!state.tenant) return; // signed out meanwhile
  for (const conn of items) {
    const card = state.cards.get(conn.id);
    if (card) card.update(conn, { quiet: true });
    else byId('connections').append(createCard(conn).el);
  }
  renderEmpty();
}

function renderEmpty() {
  byId('empty').hidden = state.cards.size > 0;
}

/** A connection the page learned about (an answer or an event): its card is updated or created. */
function upsert(conn, { quiet = false } = {}) {
  const card = state.cards.get(conn.id);
  if (card) return card.update(conn, { quiet });
  const created = createCard(conn);
  byId('connections').prepend(created.el);
  renderEmpty();
  return created;
}

async function createConnection(event) {
  event.preventDefault();
  const provider = byId('create-provider').value;
  const name = byId('create-name').value.trim();
  const error = byId('create-error');
  error.textContent = '';
  const body = { provider };
  if (name) body.name = name;
  // OAuth ends back here: the console's own URL (the API's origin is always an allowed return origin).
  if (PROVIDERS[provider]?.auth === 'oauth2') body.returnUrl = `${location.origin}${location.pathname}`;
  const button = event.submitter ?? byId('create-form').querySelector('button');
  button.disabled = true;
  try {
    const conn = await api('POST', '/v1/connections', body);
    byId('create-name').value = '';
    const card = upsert(conn, { quiet: true });
    announce(`Created ${card.title}. Connect it next.`);
    card.focusFirstAction();
  } catch (err) {
    handleError(err, (m) => (error.textContent = m));
  } finally {
    button.disabled = false;
  }
}

const ACTION_LABELS = {
  connect: 'Connect',
  reconnect: 'Reconnect',
  sync: 'Sync now',
  pause: 'Pause',
  resume: 'Resume',
  invite: 'Invite admin',
  disconnect: 'Disconnect',
};

/** The way forward is a filled button; the others are quiet, and Disconnect is marked as destructive. */
const ACTION_STYLES = { pause: 'quiet', resume: 'quiet', invite: 'quiet', disconnect: 'danger' };

function createCard(initial) {
  const id = initial.id;
  const provider = PROVIDERS[initial.provider] ?? { displayName: initial.provider, auth: 'token', insights: [] };
  const ids = { title: `c-${id}-title`, status: `c-${id}-status`, history: `c-${id}-history`, insights: `c-${id}-insights` };
  const card = {
    conn: initial,
    /** The running run's latest figures (`{ counts }`), from events or GET …/runs. */
    run: null,
    get title() {
      return `${card.conn.name ?? `${provider.displayName} connection`} (${provider.displayName})`;
    },
  };

  const status = h('p', { class: 'status', id: ids.status });
  const message = h('p', { class: 'error', role: 'alert' });
  const buttons = {};
  for (const [action, label] of Object.entries(ACTION_LABELS)) {
    buttons[action] = h(
      'button',
      {
        type: 'button',
        class: ACTION_STYLES[action],
        'data-action': action,
        hidden: true,
        onclick: () => act(action),
      },
      label,
    );
  }
  const heading = h(
    'h3',
    { id: ids.title, tabIndex: -1 },
    h('span', { class: 'name' }),
    ' ',
    h('span', { class: 'provider' }, provider.displayName),
  );
  const tokenForm = provider.auth === 'oauth2' ? null : createTokenForm();
  const invitePanel = h('div', { class: 'invite', hidden: true });
  const historyButton = h(
    'button',
    { type: 'button', class: 'toggle', 'aria-expanded': 'false', 'aria-controls': ids.history, onclick: () => toggleHistory() },
    'Run history',
  );
  const insightsButton = h(
    'button',
    { type: 'button', class: 'toggle', 'aria-expanded': 'false', 'aria-controls': ids.insights, onclick: () => toggleInsights() },
    'Insights',
  );
  const historyPanel = h('section', { class: 'panel-body', id: ids.history, hidden: true, 'aria-label': 'Run history' });
  const insightsPanel = h('section', { class: 'panel-body', id: ids.insights, hidden: true, 'aria-label': 'Insights' });

  card.el = h(
    'li',
    { class: 'card', 'data-id': id },
    h(
      'article',
      { 'aria-labelledby': ids.title },
      h('header', { class: 'card-head' }, heading, status),
      h('div', { class: 'actions', role: 'group', 'aria-labelledby': ids.title }, Object.values(buttons)),
      message,
      tokenForm?.el,
      invitePanel,
      h('div', { class: 'toggles' }, historyButton, provider.insights.length > 0 && insightsButton),
      historyPanel,
      insightsPanel,
    ),
  );

  function render() {
    const conn = card.conn;
    heading.querySelector('.name').textContent = conn.name ?? `${provider.displayName} connection`;
    const { text, tone } = describeStatus(conn, { ...model, run: card.run });
    status.textContent = text;
    status.className = `status tone-${tone}`;
    card.el.dataset.status = conn.status;
    const allowed = new Set(availableActions(conn, model));
    for (const [action, button] of Object.entries(buttons)) button.hidden = !allowed.has(action);
    if (tokenForm && !allowed.has('connect') && !allowed.has('reconnect')) tokenForm.close();
    return text;
  }

  card.update = (conn, { quiet = false } = {}) => {
    // Answers and events can cross: never go back to an older view of the connection.
    if (Date.parse(conn.updatedAt) < Date.parse(card.conn.updatedAt)) return card;
    const before = card.conn;
    card.conn = conn;
    if (conn.syncState?.state !== 'running') card.run = null;
    const text = render();
    if (!quiet && (before.status !== conn.status || before.syncState?.state !== conn.syncState?.state)) announce(`${card.title}: ${text}`);
    return card;
  };

  card.setRun = (run) => {
    // A run's end can arrive just before the connection's own update: its final counts stand until then.
    card.run = run.status === 'running' || card.run?.runId === run.runId ? run : null;
    render();
    if (!historyPanel.hidden) scheduleHistoryRefresh();
  };

  card.progress = ({ runId, resource, records }) => {
    const counts = card.run?.runId === runId ? card.run.counts : {};
    card.run = { runId, status: 'running', counts: { ...counts, [resource]: records } };
    render();
  };

  card.refresh = render;
  card.focusFirstAction = () => (Object.values(buttons).find((b) => !b.hidden) ?? heading).focus();

  async function loadRunningCounts() {
    try {
      const { items } = await api('GET', `/v1/connections/${id}/runs`);
      const running = items.find((r) => r.status === 'running');
      if (running && card.conn.syncState?.state === 'running' && !card.run) card.setRun({ ...running, runId: running.id });
    } catch {
      // The status line still says what is syncing, without a count.
    }
  }

  /** Runs an action with its button disabled; failures are shown on the card in the API's words. */
  async function busy(button, work) {
    message.textContent = '';
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    try {
      await work();
    } catch (err) {
      handleError(err, (m) => (message.textContent = m));
    } finally {
      button.disabled = false;
      button.removeAttribute('aria-busy');
    }
  }

  async function act(action) {
    const button = buttons[action];
    const path = `/v1/connections/${id}`;
    switch (action) {
      case 'connect':
      case 'reconnect':
        if (tokenForm) return tokenForm.open();
        return busy(button, async () => {
          const { authorizeUrl } = await api('POST', `${path}/authorize`);
          announce(`Opening the ${provider.displayName} consent page…`);
          // Our own consent page; the provider sends the customer back to this console afterwards.
          location.assign(authorizeUrl);
        });
      case 'sync':
        return busy(button, async () => {
          card.update(await api('POST', `${path}/sync`));
          announce(`${card.title}: sync started.`);
        });
      case 'pause':
      case 'resume':
        return busy(button, async () => {
          card.update(await api('POST', `${path}/${action}`));
          (buttons[action === 'pause' ? 'resume' : 'pause'].hidden ? heading : buttons[action === 'pause' ? 'resume' : 'pause']).focus();
        });
      case 'disconnect':
        if (!(await confirmDialog(card.title))) return button.focus();
        return busy(button, async () => {
          card.update(await api('DELETE', path));
          heading.focus();
        });
      case 'invite':
        return busy(button, async () => showInvite(await api('POST', `${path}/invites`)));
    }
  }

  function showInvite(invite) {
    const inputId = `c-${id}-invite`;
    const input = h('input', { id: inputId, type: 'text', readOnly: true, value: invite.inviteUrl, class: 'wide', spellcheck: 'false' });
    const copied = h('span', { class: 'muted', role: 'status' });
    const copy = h(
      'button',
      {
        type: 'button',
        onclick: async () => {
          try {
            await navigator.clipboard.writeText(invite.inviteUrl);
          } catch {
            // Without clipboard access, the selected link can be copied by hand.
            input.select();
          }
          copied.textContent = 'Copied.';
        },
      },
      'Copy',
    );
    fill(
      invitePanel,
      h('label', { for: inputId }, `Invite link for an admin (expires ${formatDateTime(invite.expiresAt)})`),
      h(
        'div',
        { class: 'row' },
        input,
        copy,
        h('button', { type: 'button', class: 'quiet', onclick: () => (invitePanel.hidden = true) }, 'Close'),
        copied,
      ),
    );
    invitePanel.hidden = false;
    input.focus();
    input.select();
  }

  /** Token providers: a small form, shown by Connect / Reconnect; the provider's refusal is shown in it. */
  function createTokenForm() {
    const inputId = `c-${id}-token`;
    const errorId = `c-${id}-token-error`;
    const input = h('input', {
      id: inputId,
      type: 'password',
      autocomplete: 'off',
      spellcheck: 'false',
      required: true,
      'aria-describedby': errorId,
    });
    const error = h('p', { id: errorId, class: 'error', role: 'alert' });
    const save = h('button', { type: 'submit' }, 'Save token');
    const el = h(
      'form',
      { class: 'token-form', hidden: true, onsubmit: (e) => void submit(e) },
      h('label', { for: inputId }, `${provider.displayName} access token`),
      h('div', { class: 'row' }, input, save, h('button', { type: 'button', class: 'quiet', onclick: () => close(true) }, 'Cancel')),
      error,
    );
    async function submit(event) {
      event.preventDefault();
      error.textContent = '';
      input.removeAttribute('aria-invalid');
      save.disabled = true;
      try {
        const conn = await api('PUT', `/v1/connections/${id}/credentials`, { token: input.value });
        input.value = '';
        close(false);
        card.update(conn);
        card.focusFirstAction();
      } catch (err) {
        handleError(err, (m) => {
          error.textContent = m;
          input.setAttribute('aria-invalid', 'true');
          input.focus();
        });
      } finally {
        save.disabled = false;
      }
    }
    function close(returnFocus) {
      if (el.hidden) return;
      el.hidden = true;
      input.value = '';
      error.textContent = '';
      if (returnFocus) card.focusFirstAction();
    }
    return {
      el,
      close,
      open() {
        el.hidden = false;
        input.focus();
      },
    };
  }

  // -- run history
  let historyTimer;
  function scheduleHistoryRefresh() {
    clearTimeout(historyTimer);
    historyTimer = setTimeout(() => void loadHistory(), 300);
  }

  async function toggleHistory() {
    const open = historyPanel.hidden;
    historyPanel.hidden = !open;
    historyButton.setAttribute('aria-expanded', String(open));
    if (open) await loadHistory();
  }

  async function loadHistory() {
    historyPanel.setAttribute('aria-busy', 'true');
    try {
      const { items } = await api('GET', `/v1/connections/${id}/runs`);
      fill(historyPanel, runsTable(items));
    } catch (err) {
      handleError(err, (m) => fill(historyPanel, h('p', { class: 'error' }, `Could not load the run history: ${m}`)));
    } finally {
      historyPanel.removeAttribute('aria-busy');
    }
  }

  // -- insights
  const figures = figuresFor(provider);
  const figureSelect = h(
    'select',
    { id: `c-${id}-figure`, onchange: () => void loadFigure() },
    figures.map((f) => h('option', { value: f.id }, f.label)),
  );
  const periodSelect = h(
    'select',
    { id: `c-${id}-period`, onchange: () => void loadFigure() },
    h('option', { value: '7' }, 'Last 7 days'),
    h('option', { value: '30', selected: true }, 'Last 30 days'),
    h('option', { value: '90' }, 'Last 90 days (weeks)'),
  );
  const figureHost = h('div', { class: 'figure-host' });

  async function toggleInsights() {
    const open = insightsPanel.hidden;
    insightsPanel.hidden = !open;
    insightsButton.setAttribute('aria-expanded', String(open));
    if (open && insightsPanel.childElementCount === 0) {
      fill(
        insightsPanel,
        h(
          'div',
          { class: 'row controls' },
          h('label', { for: figureSelect.id }, 'Figure'),
          figureSelect,
          h('label', { for: periodSelect.id }, 'Period'),
          periodSelect,
        ),
        figureHost,
      );
      await loadFigure();
    }
  }

  async function loadFigure() {
    const figure = FIGURES.find((f) => f.id === figureSelect.value) ?? figures[0];
    const days = Number(periodSelect.value);
    const to = new Date();
    const from = new Date(to.getTime() - days * 86_400_000);
    const query = new URLSearchParams({ from: from.toISOString(), to: to.toISOString(), bucket: days > 31 ? 'week' : 'day' });
    figureHost.setAttribute('aria-busy', 'true');
    fill(figureHost, h('p', { class: 'muted' }, 'Loading…'));
    try {
      const data = await api('GET', `/v1/connections/${id}/insights/${figure.route}?${query}`);
      await renderFigure(figureHost, figure, data);
    } catch (err) {
      handleError(err, (m) => fill(figureHost, h('p', { class: 'error' }, m)));
    } finally {
      figureHost.removeAttribute('aria-busy');
    }
  }

  render();
  state.cards.set(id, card);
  if (initial.syncState?.state === 'running') void loadRunningCounts();
  return card;
}

function runsTable(runs) {
  const started = (r) => formatDateTime(r.startedAt);
  const took = (r) => (r.finishedAt ? formatDuration((Date.parse(r.finishedAt) - Date.parse(r.startedAt)) / 1000) : 'running');
  const records = (r) =>
    Object.entries(r.counts)
      .filter(([, n]) => n > 0)
      .map(([resource, n]) => `${resourceLabel(resource)} ${formatCount(n)}`)
      .join(' · ') || 'none';
  const problems = (r) => [
    r.error ? h('span', { class: 'error' }, r.error.message) : null,
    ...r.rejects.map((x) => h('div', { class: 'muted' }, `Rejected ${resourceLabel(x.resource)} ${x.recordId ?? ''}: ${x.reason}`)),
  ];
  return h(
    'div',
    { class: 'scroll' },
    table(
      'Sync runs, newest first',
      ['Started', 'Status', 'Took', 'Records', 'Requests', 'Rate-limit waits', 'Retries', 'Rejected', 'Errors'],
      runs.map((r) => [
        started(r),
        h('span', { class: `pill run-${r.status}` }, r.status),
        took(r),
        records(r),
        formatCount(r.requests),
        formatCount(r.rateLimitWaits),
        formatCount(r.retries),
        formatCount(r.rejected),
        problems(r),
      ]),
      { numeric: [4, 5, 6, 7] },
    ),
  );
}

// ---------------------------------------------------------------------------------------------
// The disconnect confirmation: a native modal dialog (focus moves into it and stays there; Escape
// cancels), resolved with the choice.

function confirmDialog(title) {
  const dialog = byId('confirm');
  byId('confirm-text').textContent = `Disconnect ${title}? Its stored credentials are destroyed and syncing stops. This cannot be undone.`;
  return new Promise((resolve) => {
    const done = (ok) => {
      dialog.removeEventListener('close', onClose);
      byId('confirm-ok').onclick = null;
      byId('confirm-cancel').onclick = null;
      if (dialog.open) dialog.close();
      resolve(ok);
    };
    const onClose = () => done(false);
    dialog.addEventListener('close', onClose);
    byId('confirm-ok').onclick = () => done(true);
    byId('confirm-cancel').onclick = () => done(false);
    dialog.showModal();
    byId('confirm-cancel').focus();
  });
}

// ---------------------------------------------------------------------------------------------
// Back from OAuth: the API redirected here with ?connection=&result=connected|error&error=.

const OAUTH_ERRORS = {
  access_denied: 'access was refused at the provider',
  token_exchange_failed: 'the provider did not accept the authorization code',
  missing_code: 'the provider sent no authorization code',
  connection_paused: 'the connection is paused; resume it and connect again',
  connection_disconnected: 'the connection is disconnected',
  oauth_client_required: 'no OAuth consumer is configured',
};

function landFromOAuth() {
  const params = new URLSearchParams(location.search);
  const result = params.get('result');
  if (!result) return;
  const card = state.cards.get(params.get('connection') ?? '');
  const what = card ? card.title : 'The connection';
  if (result === 'connected') showNotice(`${what} is connected.`);
  else {
    const code = params.get('error') ?? 'unknown';
    showError(`Connecting ${what} failed: ${OAUTH_ERRORS[code] ?? code}.`);
  }
  // The answer is shown once; a reload should not show it again.
  history.replaceState(null, '', location.pathname);
}

// ---------------------------------------------------------------------------------------------
// Live updates

function startStream() {
  state.stream?.close();
  const indicator = byId('stream-state');
  let announcedDown = false;
  state.stream = subscribe({
    key: session.key,
    onState(s, detail) {
      if (s === 'live') {
        fill(indicator, h('span', { class: 'dot', 'aria-hidden': 'true' }), 'Live');
        if (announcedDown) announce('Live updates are back.');
        announcedDown = false;
      } else if (s === 'connecting') fill(indicator, 'Connecting to live updates…');
      else if (s === 'retrying') {
        const reason = detail.error instanceof TypeError ? 'the network request failed' : detail.error.message;
        fill(indicator, `Live updates interrupted (${reason}); reconnecting in ${Math.round(detail.delay / 1000)} s`);
        if (!announcedDown) announce('Live updates interrupted; reconnecting.');
        announcedDown = true;
      } else if (s === 'unauthorized') signOut('Signed out: the API key is no longer valid.');
    },
    onOpen(resumed) {
      // A stream opened without Last-Event-ID carries only what happens from now on: whatever
      // changed before it opened (since the list was read, or during a gap) is read once more.
      if (!resumed) void loadConnections();
    },
    onEvent(event) {
      const data = event.data ?? {};
      // connection.*: the connection exactly as GET /v1/connections/:id shows it.
      if (event.type.startsWith('connection.') && data.connection) return void upsert(data.connection);
      const card = state.cards.get(event.connectionId);
      // sync.progress (stream only): records stored so far by the running step.
      if (event.type === 'sync.progress') return card?.progress(data);
      // sync.*: the run itself (runId, status, counts, error, until).
      if (event.type.startsWith('sync.')) card?.setRun(data);
    },
  });
}

// ---------------------------------------------------------------------------------------------

function main() {
  // Whatever fails, the page keeps standing and says what happened.
  window.addEventListener('error', (e) => showError(`Something went wrong: ${e.message}`));
  window.addEventListener('unhandledrejection', (e) => handleError(e.reason));

  fill(
    byId('create-provider'),
    Object.entries(PROVIDERS).map(([id, p]) => h('option', { value: id }, p.displayName)),
  );
  byId('signin-form').addEventListener('submit', (e) => void signIn(e));
  byId('create-form').addEventListener('submit', (e) => void createConnection(e));
  byId('sign-out').addEventListener('click', () => signOut());
  // Relative times ("5 min ago") age on their own: re-worded locally, nothing is fetched.
  setInterval(() => state.cards.forEach((c) => c.refresh()), 30_000);

  if (session.key()) void enter();
  else showSignIn();
}

main();
