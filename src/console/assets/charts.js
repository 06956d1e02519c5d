/**
 * Insight figures as charts (uPlot, loaded on first use from our own origin) and, for each, a table
 * with the same figures: the chart is an image to assistive technology, labelled with a summary, and
 * the table is its text alternative.
 */
import { fill, h, table } from './dom.js';
import { formatCount, formatDateTime, formatDuration } from './status.js';

/** The figures the console shows, each from one insights route (README "Insights"). */
export const FIGURES = [
  { id: 'builds', label: 'Builds and success rate', route: 'ci' },
  { id: 'duration', label: 'Build duration (p50, p90, p95)', route: 'ci' },
  { id: 'flaky', label: 'Flaky workflows', route: 'flakiness' },
  { id: 'seats', label: 'Inactive seats', route: 'seats' },
  { id: 'cycle', label: 'Pull request throughput and cycle time', route: 'delivery' },
];

export const figuresFor = (provider) => FIGURES.filter((f) => provider.insights.includes(f.route));

// Colours with at least 3:1 contrast on white (WCAG 1.4.11, graphical objects).
const BLUE = '#1f5fbf';
const GREEN = '#1a7f37';
const ORANGE = '#b35900';
const PURPLE = '#6f42c1';

let uplotLoading;
/** uPlot's script and stylesheet, injected once (script-src 'self' allows them: same origin). */
export function loadUplot() {
  uplotLoading ??= new Promise((resolve, reject) => {
    document.head.append(h('link', { rel: 'stylesheet', href: new URL('./uPlot.min.css', import.meta.url).href }));
    const script = h('script', { src: new URL('./uPlot.iife.min.js', import.meta.url).href });
    script.addEventListener('load', () => resolve(window.uPlot));
    script.addEventListener('error', () => {
      uplotLoading = undefined;
      script.remove();
      reject(new Error('The chart library could not be loaded; the table below has the figures.'));
    });
    document.head.append(script);
  });
  return uplotLoading;
}

const day = new Intl.DateTimeFormat('en-GB', { day: 'numeric', month: 'short', timeZone: 'UTC' });
const bucketLabel = (iso, bucket) => (bucket === 'week' ? `Week of ${day.format(new Date(iso))}` : day.format(new Date(iso)));
const pct = (rate) => (rate === null || rate === undefined ? '—' : `${(rate * 100).toFixed(1)} %`);
const seconds = (iso) => Date.parse(iso) / 1000;

/**
 * A uPlot chart in `host`, sized to it and resized with it; `options(uPlot)` gives the chart's
 * options. If the library cannot be loaded, the host says so (the table still has the figures).
 */
async function plot(host, options, data) {
  let uPlot;
  try {
    uPlot = await loadUplot();
  } catch (err) {
    host.removeAttribute('role');
    host.removeAttribute('aria-label');
    fill(host, h('p', { class: 'error' }, err.message));
    return undefined;
  }
  const opts = options(uPlot);
  // Half a bucket of room on each side, so the first and last bars are drawn whole.
  const xs = data[0];
  const pad = xs.length > 1 ? (xs[1] - xs[0]) / 2 : 43_200;
  const width = () => Math.max(280, host.clientWidth || 600);
  const chart = new uPlot(
    {
      width: width(),
      height: 240,
      // Buckets are UTC days or weeks: label them in UTC too.
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'),
      cursor: { drag: { x: false, y: false } },
      legend: { live: false },
      ...opts,
      scales: { x: { time: true, range: (_u, min, max) => [min - pad, max + pad] }, ...opts.scales },
      // Ticks on bucket starts (UTC days, or weeks), labelled like the tables.
      axes: [
        { incrs: [1, 2, 7, 14, 28, 56].map((d) => d * 86_400), values: (_u, splits) => splits.map((t) => day.format(new Date(t * 1000))) },
        ...opts.axes.slice(1),
      ],
    },
    data,
    host,
  );
  new ResizeObserver(() => chart.setSize({ width: width(), height: 240 })).observe(host);
  return chart;
}

/** A figure: heading, the chart (an image with a summary), the table alternative. */
function figureShell(title, summary) {
  const chart = h('div', { class: 'chart', role: 'img', 'aria-label': summary });
  const alt = h('div', { class: 'alt' });
  return { el: h('figure', { class: 'figure' }, h('figcaption', {}, title), chart, alt), chart, alt };
}

const details = (label, tbl, open = false) => h('details', { open }, h('summary', {}, label), h('div', { class: 'scroll' }, tbl));

/** Fills `host` with the figure for `figure.id` from the route's response `data`. */
export async function renderFigure(host, figure, data) {
  switch (figure.id) {
    case 'builds':
      return renderBuilds(host, data);
    case 'duration':
      return renderDurations(host, data);
    case 'flaky':
      return renderFlaky(host, data);
    case 'seats':
      return renderSeats(host, data);
    case 'cycle':
      return renderCycle(host, data);
    default:
      throw new Error(`unknown figure ${figure.id}`);
  }
}

async function renderBuilds(host, ci) {
  const { bucket } = ci.range;
  const t = ci.totals;
  const summary = `Builds per ${bucket}: ${formatCount(t.builds)} builds in the period, success rate ${pct(t.successRate)}. The table below lists each ${bucket}.`;
  const f = figureShell(`Builds per ${bucket} and success rate`, summary);
  fill(
    f.alt,
    h(
      'p',
      {},
      `${formatCount(t.builds)} builds · ${formatCount(t.succeeded)} succeeded · ${formatCount(t.failed)} failed · success rate ${pct(t.successRate)}`,
    ),
    details(
      'Table: builds and success rate',
      table(
        `Builds per ${bucket}`,
        [bucket === 'week' ? 'Week' : 'Day', 'Builds', 'Succeeded', 'Failed', 'Success rate'],
        ci.buckets.map((b) => [
          bucketLabel(b.start, bucket),
          formatCount(b.builds),
          formatCount(b.succeeded),
          formatCount(b.failed),
          pct(b.successRate),
        ]),
        { numeric: [1, 2, 3, 4] },
      ),
    ),
  );
  fill(host, f.el);
  await plot(
    f.chart,
    (uPlot) => ({
      scales: { n: { range: (_u, _min, max) => [0, Math.max(1, max)] }, '%': { range: [0, 100] } },
      series: [
        {},
        {
          label: 'Builds',
          scale: 'n',
          stroke: BLUE,
          fill: 'rgba(31, 95, 191, 0.35)',
          paths: uPlot.paths.bars({ size: [0.6, 40] }),
          points: { show: false },
        },
        { label: 'Success rate', scale: '%', stroke: GREEN, width: 2, value: (_u, v) => (v === null ? '—' : `${v.toFixed(1)} %`) },
      ],
      axes: [
        {},
        { scale: 'n', label: 'Builds' },
        { scale: '%', side: 1, label: 'Success rate', grid: { show: false }, values: (_u, vs) => vs.map((v) => `${v} %`) },
      ],
    }),
    [
      ci.buckets.map((b) => seconds(b.start)),
      ci.buckets.map((b) => b.builds),
      ci.buckets.map((b) => (b.successRate === null ? null : b.successRate * 100)),
    ],
  );
}

async function renderDurations(host, ci) {
  const { bucket } = ci.range;
  const d = ci.totals.durationSeconds;
  const summary = `Build duration per ${bucket}: median ${formatDuration(d.p50)}, p90 ${formatDuration(d.p90)}, p95 ${formatDuration(d.p95)} over the period. The table below lists each ${bucket}.`;
  const f = figureShell(`Build duration per ${bucket}`, summary);
  fill(
    f.alt,
    h('p', {}, `Over the period: p50 ${formatDuration(d.p50)} · p90 ${formatDuration(d.p90)} · p95 ${formatDuration(d.p95)}`),
    details(
      'Table: build duration percentiles',
      table(
        `Build duration per ${bucket}`,
        [bucket === 'week' ? 'Week' : 'Day', 'Finished builds', 'p50', 'p90', 'p95'],
        ci.buckets.map((b) => [
          bucketLabel(b.start, bucket),
          formatCount(b.finished),
          formatDuration(b.durationSeconds.p50),
          formatDuration(b.durationSeconds.p90),
          formatDuration(b.durationSeconds.p95),
        ]),
        { numeric: [1, 2, 3, 4] },
      ),
    ),
  );
  fill(host, f.el);
  const minutes = (v) => (v === null ? null : v / 60);
  const value = (_u, v) => (v === null ? '—' : formatDuration(v * 60));
  await plot(
    f.chart,
    () => ({
      scales: { y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
      series: [
        {},
        { label: 'p50', stroke: BLUE, width: 2, value },
        { label: 'p90', stroke: ORANGE, width: 2, value },
        { label: 'p95', stroke: PURPLE, width: 2, dash: [6, 4], value },
      ],
      axes: [{}, { label: 'Minutes' }],
    }),
    [
      ci.buckets.map((b) => seconds(b.start)),
      ci.buckets.map((b) => minutes(b.durationSeconds.p50)),
      ci.buckets.map((b) => minutes(b.durationSeconds.p90)),
      ci.buckets.map((b) => minutes(b.durationSeconds.p95)),
    ],
  );
}

/** A bar drawn with CSS (its width set through the CSSOM, which the CSP allows), beside its number. */
function bar(fraction, label) {
  const inner = h('span', { class: 'bar-fill' });
  inner.style.width = `${Math.round(Math.max(0, Math.min(1, fraction)) * 100)}%`;
  return h('span', { class: 'bar' }, h('span', { class: 'bar-track', 'aria-hidden': 'true' }, inner), h('span', {}, label));
}

/** A run id short enough to read: Bitbucket's are braced UUIDs. */
const shortId = (id) => {
  const bare = id.replace(/^\{|\}$/g, '');
  return bare.length > 12 ? `${bare.slice(0, 8)}…` : bare;
};

/** Evidence opens at the provider; anything but an http(s) URL is shown as text, never linked. */
const evidenceLink = (run, text) =>
  /^https?:\/\//i.test(run.url) ? h('a', { href: run.url, target: '_blank', rel: 'noopener noreferrer' }, text) : text;

async function renderFlaky(host, fl) {
  const t = fl.totals;
  const maxLost = Math.max(1, ...fl.workflows.map((w) => w.timeLostSeconds));
  fill(
    host,
    h(
      'figure',
      { class: 'figure' },
      h('figcaption', {}, 'Flaky workflows (succeeded and failed on the same commit)'),
      h(
        'p',
        {},
        `${formatCount(t.flakyWorkflows)} flaky workflows · ${formatCount(t.affectedCommits)} affected commits · ${formatDuration(t.timeLostSeconds)} lost to reruns`,
      ),
      h(
        'div',
        { class: 'scroll' },
        table(
          'Flaky workflows, most time lost first',
          ['Workflow', 'Where', 'Time lost', 'Score (flips ÷ runs)', 'Affected commits', 'Evidence'],
          fl.workflows.map((w) => [
            w.workflow,
            w.groupName ?? w.groupId,
            bar(w.timeLostSeconds / maxLost, formatDuration(w.timeLostSeconds)),
            `${w.score.toFixed(2)} (${w.flips}/${w.runs})`,
            formatCount(w.affectedCommits),
            h(
              'span',
              { class: 'evidence' },
              evidenceLink(w.evidence.success, `success ${shortId(w.evidence.success.id)}`),
              ' · ',
              evidenceLink(w.evidence.failure, `failure ${shortId(w.evidence.failure.id)}`),
              ` on ${w.evidence.commit.slice(0, 10)}`,
            ),
          ]),
          { numeric: [2, 3, 4] },
        ),
      ),
    ),
  );
}

async function renderSeats(host, seats) {
  const t = seats.totals;
  fill(
    host,
    h(
      'figure',
      { class: 'figure' },
      h('figcaption', {}, `Seats as of ${formatDateTime(seats.asOf)}`),
      h(
        'p',
        {},
        bar(
          t.members ? t.inactive30 / t.members : 0,
          `${formatCount(t.inactive30)} of ${formatCount(t.members)} members inactive for 30 days`,
        ),
      ),
      details(
        'Table: seats per workspace',
        table(
          'Seats per workspace',
          ['Workspace', 'Members', 'Active (30 days)', 'Active (90 days)', 'Inactive (30 days)'],
          seats.workspaces.map((w) => [
            w.slug ?? w.workspaceId,
            formatCount(w.members),
            formatCount(w.active30),
            formatCount(w.active90),
            formatCount(w.inactive30),
          ]),
          { numeric: [1, 2, 3, 4] },
        ),
      ),
      h(
        'div',
        { class: 'scroll' },
        table(
          'Members inactive for 30 days',
          ['Member', 'Workspace', 'Last activity'],
          seats.inactiveMembers.map((m) => [
            m.displayName ?? m.userId,
            seats.workspaces.find((w) => w.workspaceId === m.workspaceId)?.slug ?? m.workspaceId,
            m.lastActivityAt ? formatDateTime(m.lastActivityAt) : 'never',
          ]),
        ),
      ),
    ),
  );
}

async function renderCycle(host, delivery) {
  const { bucket } = delivery.range;
  const c = delivery.cycleTimeSeconds;
  const splits = [
    ['Open → merge (total)', c.total],
    ['Open → first review', c.toFirstReview],
    ['First review → approval', c.reviewToApproval],
    ['Approval → merge', c.approvalToMerge],
  ];
  const maxP90 = Math.max(1, ...splits.map(([, s]) => s.p90 ?? 0));
  const opened = delivery.throughput.reduce((n, b) => n + b.opened, 0);
  const summary = `Pull requests per ${bucket}: ${formatCount(opened)} opened and ${formatCount(c.merged)} merged in the period; median open to merge ${formatDuration(c.total.p50)}. The tables below have the figures.`;
  const f = figureShell(`Pull requests opened and merged per ${bucket}`, summary);
  fill(
    f.alt,
    details(
      'Table: pull requests per bucket',
      table(
        `Pull requests per ${bucket}`,
        [bucket === 'week' ? 'Week' : 'Day', 'Opened', 'Merged'],
        delivery.throughput.map((b) => [bucketLabel(b.start, bucket), formatCount(b.opened), formatCount(b.merged)]),
        { numeric: [1, 2] },
      ),
    ),
    table(
      `Cycle time of the ${formatCount(c.merged)} pull requests merged in the period`,
      ['Stage', 'p50', 'p90'],
      splits.map(([label, s]) => [
        label,
        bar((s.p50 ?? 0) / maxP90, formatDuration(s.p50)),
        bar((s.p90 ?? 0) / maxP90, formatDuration(s.p90)),
      ]),
      { numeric: [1, 2] },
    ),
  );
  fill(host, f.el);
  await plot(
    f.chart,
    () => ({
      scales: { y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
      series: [{}, { label: 'Opened', stroke: BLUE, width: 2 }, { label: 'Merged', stroke: GREEN, width: 2 }],
      axes: [{}, { label: 'Pull requests' }],
    }),
    [delivery.throughput.map((b) => seconds(b.start)), delivery.throughput.map((b) => b.opened), delivery.throughput.map((b) => b.merged)],
  );
}
