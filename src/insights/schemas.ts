import { z } from 'zod';

/** Response shapes of the insights API (OpenAPI is generated from these). Durations are seconds. */

const num = z.number().nullable();

export const percentilesSchema = z
  .object({ p50: num, p90: num, p95: num })
  .meta({ id: 'InsightPercentiles', description: 'percentile_cont over the finished runs; null when there are none' });

export const rangeSchema = z.object({
  from: z.string().describe('Inclusive start (ISO)'),
  to: z.string().describe('Exclusive end (ISO)'),
  bucket: z.enum(['day', 'week']),
});

const outcomeCounts = {
  builds: z.number().int().describe('Runs triggered in the period, running ones included'),
  finished: z.number().int(),
  succeeded: z.number().int(),
  failed: z.number().int(),
  aborted: z.number().int(),
  successRate: num.describe('succeeded / finished'),
  failureRate: num.describe('failed / finished'),
  abortRate: num.describe('aborted / finished'),
  durationSeconds: percentilesSchema,
  queueSeconds: percentilesSchema.describe('null percentiles where the provider has no queue timestamps (Bitbucket)'),
  cost: z.number().describe('credits (Bitrise credit_cost) or build minutes (Bitbucket build_seconds_used / 60)'),
};

export const ciStatsSchema = z.object(outcomeCounts).meta({ id: 'CiStats' });

export const ciTrendSchema = z
  .object({
    groupId: z.string(),
    groupName: z.string().nullable(),
    workflow: z.string(),
    builds: z.number().int(),
    failed: z.number().int(),
    failureRate: num,
    durationP50: num,
    previous: z.object({ builds: z.number().int(), failed: z.number().int(), failureRate: num, durationP50: num }),
  })
  .meta({ id: 'CiTrend', description: 'A workflow in this period and in the previous period of the same length' });

export const ciResponseSchema = z
  .object({
    connectionId: z.uuid(),
    provider: z.string(),
    range: rangeSchema,
    groupKind: z.enum(['app', 'repository']),
    costUnit: z.enum(['credits', 'minutes']),
    totals: ciStatsSchema,
    buckets: z.array(z.object({ start: z.string(), ...outcomeCounts })),
    byGroup: z.array(z.object({ groupId: z.string(), groupName: z.string().nullable(), ...outcomeCounts })),
    byWorkflow: z.array(z.object({ groupId: z.string(), groupName: z.string().nullable(), workflow: z.string(), ...outcomeCounts })),
    slowest: z.array(ciTrendSchema).describe('Five workflows with the highest median duration'),
    mostFailing: z.array(ciTrendSchema).describe('Five workflows with the most failed runs'),
  })
  .meta({ id: 'CiInsights' });

const runRef = z.object({ id: z.string(), url: z.string() });

export const flakinessResponseSchema = z
  .object({
    connectionId: z.uuid(),
    provider: z.string(),
    range: rangeSchema,
    totals: z.object({ flakyWorkflows: z.number().int(), affectedCommits: z.number().int(), timeLostSeconds: z.number() }),
    workflows: z.array(
      z.object({
        groupId: z.string(),
        groupName: z.string().nullable(),
        workflow: z.string(),
        score: z.number().describe('flips ÷ runs on the affected commits'),
        flips: z.number().int(),
        runs: z.number().int(),
        affectedCommits: z.number().int(),
        timeLostSeconds: z.number().describe('Total duration of the failed runs on affected commits'),
        evidence: z.object({ commit: z.string(), success: runRef, failure: runRef }),
      }),
    ),
  })
  .meta({ id: 'FlakinessInsights' });

export const seatsResponseSchema = z
  .object({
    connectionId: z.uuid(),
    asOf: z.string(),
    totals: z.object({ members: z.number().int(), active30: z.number().int(), active90: z.number().int(), inactive30: z.number().int() }),
    workspaces: z.array(
      z.object({
        workspaceId: z.string(),
        slug: z.string().nullable(),
        members: z.number().int(),
        active30: z.number().int(),
        active90: z.number().int(),
        inactive30: z.number().int(),
      }),
    ),
    inactiveMembers: z.array(
      z.object({
        workspaceId: z.string(),
        userId: z.string(),
        displayName: z.string().nullable(),
        lastActivityAt: z.string().nullable(),
      }),
    ),
  })
  .meta({ id: 'SeatInsights' });

const p5090 = z.object({ p50: num, p90: num });

export const deliveryResponseSchema = z
  .object({
    connectionId: z.uuid(),
    range: rangeSchema,
    throughput: z.array(z.object({ start: z.string(), opened: z.number().int(), merged: z.number().int() })),
    cycleTimeSeconds: z.object({
      merged: z.number().int(),
      total: p5090,
      toFirstReview: p5090,
      reviewToApproval: p5090,
      approvalToMerge: p5090,
    }),
    reviewLoad: z.array(
      z.object({ userId: z.string(), displayName: z.string().nullable(), reviews: z.number().int(), approvals: z.number().int() }),
    ),
    dora: z
      .object({
        deploymentPattern: z.string(),
        deployments: z.number().int(),
        successfulDeployments: z.number().int(),
        failedDeployments: z.number().int(),
        deploymentsPerDay: z.number(),
        frequency: z.array(z.object({ start: z.string(), deployments: z.number().int(), successful: z.number().int() })),
        leadTimeSeconds: p5090,
        changeFailureRate: num,
        timeToRestoreSeconds: p5090,
      })
      .nullable()
      .describe('null until PATCH /v1/connections/:id sets insights.deploymentPattern'),
  })
  .meta({ id: 'DeliveryInsights' });

export const overviewFiguresSchema = z.object({
  builds: z.number().int().nullable(),
  successRate: num,
  durationP50: num,
  cost: num,
  costUnit: z.enum(['credits', 'minutes']).nullable(),
  members: z.number().int().nullable(),
  active30: z.number().int().nullable(),
  mergedPullRequests: z.number().int().nullable(),
  cycleTimeP50: num,
});

export const overviewResponseSchema = z
  .object({
    range: rangeSchema,
    connections: z.array(
      z.object({
        connectionId: z.uuid(),
        provider: z.string(),
        name: z.string().nullable(),
        status: z.string(),
        ...overviewFiguresSchema.shape,
      }),
    ),
    totals: z.object({
      connections: z.number().int(),
      builds: z.number().int(),
      members: z.number().int(),
      active30: z.number().int(),
      mergedPullRequests: z.number().int(),
    }),
  })
  .meta({ id: 'InsightsOverview' });

export type CiResponse = z.infer<typeof ciResponseSchema>;
export type FlakinessResponse = z.infer<typeof flakinessResponseSchema>;
export type SeatsResponse = z.infer<typeof seatsResponseSchema>;
export type DeliveryResponse = z.infer<typeof deliveryResponseSchema>;
export type OverviewFigures = z.infer<typeof overviewFiguresSchema>;
