import type { PipelineResult, PullRequestState } from './types';

export const API_BASE = '/2.0';
export const OAUTH_BASE = '/site/oauth2';
export const PR_STATES: readonly PullRequestState[] = ['OPEN', 'MERGED', 'DECLINED', 'SUPERSEDED'];
export const PIPELINE_RESULTS: readonly PipelineResult[] = ['SUCCESSFUL', 'FAILED', 'ERROR', 'STOPPED', 'EXPIRED'];
