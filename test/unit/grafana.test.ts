import fs from 'node:fs';
import path from 'node:path';
import { Histogram } from 'prom-client';
import { registry } from '../../src/metrics';
import { SDK_METRICS } from '../../src/metrics/sdk';

/**
 * deploy/grafana/conduit.json asks only for metrics that exist: ours (the registry every process
 * builds, src/metrics) or the Temporal SDK's (src/metrics/sdk.ts, checked against a real worker's
 * scrape in test/integration/lifecycle.test.ts), and only for labels those metrics carry. A renamed
 * metric or label fails here instead of leaving an empty panel.
 */

const DASHBOARD = path.resolve(__dirname, '../../deploy/grafana/conduit.json');
/** Labels Prometheus itself adds at scrape time. */
const SCRAPE_LABELS = ['instance', 'job'];
const METRIC_PREFIXES = /^(conduit_|temporal_|process_|nodejs_)/;

type Json = Record<string, any>;

/** Every metric our registry serves, with its labels (histograms as their _bucket/_sum/_count series). */
function ourMetrics(): Map<string, string[]> {
  const known = new Map<string, string[]>();
  // prom-client's metric objects carry their name and label names (not in its type declarations).
  for (const metric of registry.getMetricsAsArray() as unknown as { name: string; labelNames?: string[] }[]) {
    const labels = [...(metric.labelNames ?? [])];
    if (metric instanceof Histogram) {
      known.set(`${metric.name}_bucket`, [...labels, 'le']);
      known.set(`${metric.name}_sum`, labels);
      known.set(`${metric.name}_count`, labels);
    } else known.set(metric.name, labels);
  }
  return known;
}

function knownMetrics(): Map<string, string[]> {
  const known = ourMetrics();
  for (const [name, labels] of Object.entries(SDK_METRICS)) known.set(name, [...labels, 'service_name']);
  return known;
}

function expressions(dashboard: Json): { panel: string; expr: string }[] {
  const out: { panel: string; expr: string }[] = [];
  const walk = (panels: Json[]) => {
    for (const p of panels) {
      for (const t of (p.targets ?? []) as Json[]) out.push({ panel: p.title as string, expr: t.expr as string });
      if (p.panels) walk(p.panels as Json[]);
    }
  };
  walk(dashboard.panels as Json[]);
  return out;
}

/** The problems with one PromQL expression: unknown metrics, labels a metric does not have. */
function checkExpression(expr: string, known: Map<string, string[]>): string[] {
  const problems: string[] = [];
  // Metric names: identifiers with one of our prefixes that are not label names inside braces/by().
  const withoutStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  const used = [...withoutStrings.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?/g)].filter(([, name]) => METRIC_PREFIXES.test(name!));
  if (used.length === 0) problems.push(`no metric in: ${expr}`);
  const metricsHere: string[] = [];
  for (const [, name, selector] of used) {
    const labels = known.get(name!);
    if (!labels) {
      problems.push(`unknown metric ${name}`);
      continue;
    }
    metricsHere.push(name!);
    for (const [, label] of (selector ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g))
      if (!labels.includes(label!) && !SCRAPE_LABELS.includes(label!)) problems.push(`${name} has no label ${label}`);
  }
  // Grouping labels must exist on every metric the expression aggregates.
  for (const [, list] of withoutStrings.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)) {
    for (const label of list!
      .split(',')
      .map((l) => l.trim())
      .filter(Boolean)) {
      if (SCRAPE_LABELS.includes(label)) continue;
      const lacking = metricsHere.filter((m) => !known.get(m)!.includes(label));
      if (lacking.length) problems.push(`grouping by ${label}, which ${lacking.join(', ')} lacks`);
    }
  }
  return problems;
}

describe('Grafana dashboard', () => {
  const dashboard = JSON.parse(fs.readFileSync(DASHBOARD, 'utf8')) as Json;

  it('queries only metrics and labels that exist (ours or the Temporal SDK’s)', () => {
    const known = knownMetrics();
    const all = expressions(dashboard);
    expect(all.length).toBeGreaterThan(20);
    expect(all.flatMap(({ panel, expr }) => checkExpression(expr, known).map((p) => `${panel}: ${p}`))).toEqual([]);
  });

  it('has the panels an operator needs', () => {
    const exprs = expressions(dashboard).map((e) => e.expr);
    const needs = {
      parked: /conduit_connections\{status="needs_reconnect"\}/,
      syncFailures: /conduit_sync_runs_total\{result!="succeeded"\}/,
      rateLimitWaits: /conduit_sync_waits_total\{reason="rate_limited"\}/,
      refreshFailures: /conduit_token_refreshes_total\{outcome=~"refused/,
      workerSlots: /temporal_worker_task_slots_used/,
      apiLatency: /conduit_http_request_duration_seconds_bucket/,
      apiErrors: /conduit_http_requests_total\{status=~"5\.\."\}/,
    };
    expect(Object.entries(needs).filter(([, re]) => !exprs.some((e) => re.test(e)))).toEqual([]);
  });

  it('uses a Prometheus data source variable, so it imports into any Grafana', () => {
    expect(dashboard.templating.list).toEqual([expect.objectContaining({ name: 'datasource', type: 'datasource', query: 'prometheus' })]);
    const sources = new Set(JSON.stringify(dashboard).match(/"uid":\s*"[^"]*"/g));
    expect([...sources].filter((s) => !s.includes('${datasource}') && !s.includes('"conduit"'))).toEqual([]);
  });

  it('the check finds an unknown metric, a missing label and a bad grouping', () => {
    const known = knownMetrics();
    expect(checkExpression('rate(conduit_sync_total[5m])', known)).toEqual(['unknown metric conduit_sync_total']);
    expect(checkExpression('conduit_connections{tenant="x"}', known)).toEqual(['conduit_connections has no label tenant']);
    expect(checkExpression('sum by (connection_id) (rate(conduit_records_written_total[5m]))', known)).toEqual([
      'grouping by connection_id, which conduit_records_written_total lacks',
    ]);
    expect(checkExpression('sum by (provider) (conduit_connections{status="active"})', known)).toEqual([]);
  });
});
