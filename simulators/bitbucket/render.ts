import { isoMicros } from '../shared';
import { API_BASE } from './constants';
import type { Commit, Pipeline, PullRequest, Repo, User, Workspace } from './world';

// JSON renderers: shapes follow the definitions of the official spec (https://api.bitbucket.org/swagger.json). Every object that the spec derives from
// `object` carries its `type` discriminator (the definition name), as the real API does.

export type Json = Record<string, unknown>;

export function renderers(siteUrl: string) {
  const api = `${siteUrl}${API_BASE}`;
  const link = (href: string) => ({ href });

  const user = (u: User): Json => ({
    type: 'user',
    display_name: u.displayName,
    links: {
      self: link(`${api}/users/${encodeURIComponent(u.uuid)}`),
      avatar: link(`${siteUrl}/avatars/${u.accountId}.png`),
      html: link(`${siteUrl}/${encodeURIComponent(u.uuid)}/`),
    },
    nickname: u.nickname,
    uuid: u.uuid,
    account_id: u.accountId,
  });

  const fullUser = (u: User): Json => ({
    ...user(u),
    created_on: isoMicros(u.createdOn),
    account_status: 'active',
    is_staff: false,
  });

  const workspaceLinks = (ws: Workspace) => ({
    avatar: link(`${siteUrl}/workspaces/${ws.slug}/avatar/`),
    self: link(`${api}/workspaces/${ws.slug}`),
  });

  const workspaceBase = (ws: Workspace): Json => ({
    type: 'workspace_base',
    uuid: ws.uuid,
    slug: ws.slug,
    name: ws.name,
    is_private: true,
    links: workspaceLinks(ws),
  });

  const workspace = (ws: Workspace): Json => ({
    type: 'workspace',
    uuid: ws.uuid,
    name: ws.name,
    slug: ws.slug,
    is_private: true,
    is_privacy_enforced: false,
    forking_mode: 'allow_forks',
    created_on: isoMicros(ws.createdOn),
    links: {
      ...workspaceLinks(ws),
      html: link(`${siteUrl}/${ws.slug}/`),
      members: link(`${api}/workspaces/${ws.slug}/members`),
      owners: link(`${api}/workspaces/${ws.slug}/members?q=permission%3D%22owner%22`),
      projects: link(`${api}/workspaces/${ws.slug}/projects`),
      repositories: link(`${api}/repositories/${ws.slug}`),
      snippets: link(`${api}/snippets/${ws.slug}`),
    },
  });

  const repoLinks = (r: Repo) => ({
    self: link(`${api}/repositories/${r.workspace.slug}/${r.slug}`),
    html: link(`${siteUrl}/${r.workspace.slug}/${r.slug}`),
    avatar: link(`${siteUrl}/${r.workspace.slug}/${r.slug}/avatar/32/`),
  });

  /** The abbreviated repository embedded in pull requests, commits and pipelines. */
  const repoMini = (r: Repo): Json => ({
    type: 'repository',
    full_name: `${r.workspace.slug}/${r.slug}`,
    links: repoLinks(r),
    name: r.name,
    uuid: r.uuid,
  });

  const repository = (r: Repo): Json => {
    const ws = r.workspace;
    const self = `${api}/repositories/${ws.slug}/${r.slug}`;
    return {
      type: 'repository',
      full_name: `${ws.slug}/${r.slug}`,
      links: {
        ...repoLinks(r),
        pullrequests: link(`${self}/pullrequests`),
        commits: link(`${self}/commits`),
        forks: link(`${self}/forks`),
        watchers: link(`${self}/watchers`),
        downloads: link(`${self}/downloads`),
        clone: [
          { name: 'https', href: `${siteUrl}/${ws.slug}/${r.slug}.git` },
          { name: 'ssh', href: `ssh://git@127.0.0.1/${ws.slug}/${r.slug}.git` },
        ],
        hooks: link(`${self}/hooks`),
      },
      name: r.name,
      slug: r.slug,
      description: r.description,
      scm: 'git',
      website: null,
      owner: {
        type: 'team',
        display_name: ws.name,
        links: {
          self: link(`${api}/workspaces/${ws.slug}`),
          avatar: link(`${siteUrl}/workspaces/${ws.slug}/avatar/`),
          html: link(`${siteUrl}/${ws.slug}/`),
        },
        uuid: ws.uuid,
        username: ws.slug,
      },
      workspace: workspace(ws),
      is_private: true,
      project: {
        type: 'project',
        key: ws.projectKey,
        uuid: ws.projectUuid,
        name: `${ws.name} Platform`,
        links: {
          html: link(`${siteUrl}/${ws.slug}/workspace/projects/${ws.projectKey}`),
          avatar: link(`${siteUrl}/${ws.slug}/projects/${ws.projectKey}/avatar`),
        },
      },
      fork_policy: 'no_public_forks',
      created_on: isoMicros(r.createdOn),
      updated_on: isoMicros(r.updatedOn),
      size: 1024 * (r.commits.length + 10),
      language: r.language,
      uuid: r.uuid,
      mainbranch: { type: 'branch', name: r.mainBranch },
      has_issues: false,
      has_wiki: false,
    };
  };

  const markup = (raw: string) => ({ raw, markup: 'markdown', html: `<p>${raw}</p>` });

  const pullRequest = (r: Repo, pr: PullRequest, expand: { participants: boolean; reviewers: boolean }): Json => {
    const self = `${api}/repositories/${r.workspace.slug}/${r.slug}/pullrequests/${pr.id}`;
    const closed = pr.state === 'MERGED' || pr.state === 'DECLINED' || pr.state === 'SUPERSEDED';
    const body: Json = {
      type: 'pullrequest',
      id: pr.id,
      title: pr.title,
      description: pr.description,
      rendered: { title: markup(pr.title), description: markup(pr.description) },
      summary: markup(pr.description),
      state: pr.state,
      author: user(pr.author),
      source: { branch: { name: pr.sourceBranch }, commit: { hash: pr.sourceHash }, repository: repoMini(r) },
      destination: { branch: { name: r.mainBranch }, commit: { hash: pr.destinationHash }, repository: repoMini(r) },
      comment_count: pr.commentCount,
      task_count: pr.taskCount,
      close_source_branch: true,
      reason: '',
      created_on: isoMicros(pr.createdOn),
      updated_on: isoMicros(pr.updatedOn),
      draft: pr.draft,
      links: {
        self: link(self),
        html: link(`${siteUrl}/${r.workspace.slug}/${r.slug}/pull-requests/${pr.id}`),
        commits: link(`${self}/commits`),
        approve: link(`${self}/approve`),
        diff: link(`${self}/diff`),
        diffstat: link(`${self}/diffstat`),
        comments: link(`${self}/comments`),
        activity: link(`${self}/activity`),
        merge: link(`${self}/merge`),
        decline: link(`${self}/decline`),
      },
    };
    // The real API sends `null` for these while a PR is open; the spec types them as objects, so
    // the simulator leaves them out instead (absent and null mean the same to a careful client).
    if (closed) body.closed_by = user(pr.author);
    if (pr.mergeHash && pr.state === 'MERGED') body.merge_commit = { hash: pr.mergeHash };
    if (expand.reviewers) body.reviewers = pr.reviewers.map(user);
    if (expand.participants) {
      body.participants = pr.reviewers.map((rv) => {
        const approved = pr.approvedBy.has(rv.uuid);
        return {
          type: 'participant',
          user: user(rv),
          role: 'REVIEWER',
          approved,
          ...(approved ? { state: 'approved', participated_on: isoMicros(pr.updatedOn) } : {}),
        };
      });
    }
    return body;
  };

  const commitLinks = (r: Repo, hash: string) => ({
    self: link(`${api}/repositories/${r.workspace.slug}/${r.slug}/commit/${hash}`),
    html: link(`${siteUrl}/${r.workspace.slug}/${r.slug}/commits/${hash}`),
  });

  const commit = (r: Repo, c: Commit): Json => ({
    type: 'commit',
    hash: c.hash,
    date: isoMicros(c.date),
    author: { type: 'author', raw: `${c.author.displayName} <${c.author.email}>`, user: user(c.author) },
    message: c.message,
    summary: markup(c.message.trim()),
    links: commitLinks(r, c.hash),
    parents: c.parent ? [{ type: 'commit', hash: c.parent, links: commitLinks(r, c.parent) }] : [],
    repository: repoMini(r),
  });

  const pipelineState = (p: Pipeline): Json => {
    if (p.state === 'PENDING') return { type: 'pipeline_state_pending', name: 'PENDING' };
    if (p.state === 'IN_PROGRESS') {
      return {
        type: 'pipeline_state_in_progress',
        name: 'IN_PROGRESS',
        stage: { type: 'pipeline_state_in_progress_running', name: 'RUNNING' },
      };
    }
    const result = p.result ?? 'SUCCESSFUL';
    return {
      type: 'pipeline_state_completed',
      name: 'COMPLETED',
      result: { type: `pipeline_state_completed_${result.toLowerCase()}`, name: result },
    };
  };

  const pipeline = (r: Repo, p: Pipeline): Json => ({
    type: 'pipeline',
    uuid: p.uuid,
    build_number: p.buildNumber,
    creator: user(p.creator),
    repository: repoMini(r),
    target: {
      type: 'pipeline_ref_target',
      ref_type: 'branch',
      ref_name: p.branch,
      selector: { type: 'branches', pattern: p.branch },
      commit: { type: 'commit', hash: p.commitHash, links: commitLinks(r, p.commitHash) },
    },
    trigger: p.trigger === 'PUSH' ? { type: 'pipeline_trigger_push', name: 'PUSH' } : { type: 'pipeline_trigger_manual', name: 'MANUAL' },
    state: pipelineState(p),
    created_on: isoMicros(p.createdOn),
    ...(p.completedOn !== undefined ? { completed_on: isoMicros(p.completedOn) } : {}),
    run_number: 1,
    build_seconds_used: p.buildSecondsUsed,
    variables: [],
  });

  return { user, fullUser, workspaceBase, workspace, repository, pullRequest, commit, pipeline };
}

// ---------------------------------------------------------------------------------------------
// OAuth 2.0

export type Renderers = ReturnType<typeof renderers>;
