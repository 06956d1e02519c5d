/**
 * The Temporal SDK metrics (Core, exported as configured in ./worker-endpoint.ts: counters with a
 * `_total` suffix, durations in seconds) that the dashboard (deploy/grafana/conduit.json) and the
 * README use, with the labels they carry (besides `service_name`). test/integration/lifecycle.test.ts
 * checks a real worker's scrape serves each of them with these labels; test/unit/grafana.test.ts
 * checks the dashboard asks for nothing else.
 */
export const SDK_METRICS: Record<string, readonly string[]> = {
  // Gauges per task queue: slots per worker_type (WorkflowWorker, ActivityWorker, LocalActivityWorker).
  temporal_worker_task_slots_available: ['namespace', 'task_queue', 'worker_type'],
  temporal_worker_task_slots_used: ['namespace', 'task_queue', 'worker_type'],
  temporal_sticky_cache_size: ['namespace', 'task_queue'],
  temporal_num_pollers: ['namespace', 'task_queue', 'poller_type'],
  // Calls to the Temporal frontend, by operation.
  temporal_request_total: ['operation'],
  // How long tasks wait for a free worker: the signal to add workers or slots.
  temporal_workflow_task_schedule_to_start_latency_bucket: ['namespace', 'task_queue', 'le'],
  temporal_activity_schedule_to_start_latency_bucket: ['namespace', 'task_queue', 'le'],
  temporal_activity_execution_latency_bucket: ['namespace', 'task_queue', 'activity_type', 'le'],
};
