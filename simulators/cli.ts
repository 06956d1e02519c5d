import { parseArgs } from 'node:util';
import { DEFAULT_BITBUCKET_CONSUMER, startBitbucketSimulator, type BitbucketConsumer, type BitbucketSeed } from './bitbucket';
import { startBitriseSimulator, type BitriseSeed } from './bitrise';

/**
 * Starts both simulators and prints where they listen, for the demo and for manual poking:
 *
 *   tsx simulators/cli.ts --bitbucket-port 7990 --bitrise-port 7991 \
 *     --consumer "$BITBUCKET_CLIENT_ID:$BITBUCKET_CLIENT_SECRET" --bitrise-token "$BITRISE_TOKEN"
 *
 * `--json` prints one JSON line instead, for a parent process to parse. Credentials are taken in,
 * never printed: the caller already knows them. Everything else is driven over `/_sim` (see the
 * simulator modules for the routes).
 */

const USAGE = `Usage: tsx simulators/cli.ts [options]
  --host <host>             interface to listen on (default 127.0.0.1)
  --bitbucket-port <port>   default 0 (any free port)
  --bitrise-port <port>     default 0 (any free port)
  --consumer <id:secret>    Bitbucket OAuth consumer to accept (repeatable; default: the built-in one)
  --callback-url <url>      registered callback URL for the --consumer entries
  --bitrise-token <token>   Bitrise token to accept from the start (repeatable)
  --bitbucket-seed <json>   BitbucketSeed, e.g. '{"workspaces":2,"reposPerWorkspace":3}'
  --bitrise-seed <json>     BitriseSeed, e.g. '{"organizations":1,"buildsPerApp":20}'
  --json                    print {"bitbucket":{…},"bitrise":{…}} on one line
  --help`;

function port(value: string | undefined, flag: string): number {
  const n = Number(value ?? '0');
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`${flag} must be a port number`);
  return n;
}

function json<T>(value: string | undefined, flag: string): T | undefined {
  if (value === undefined) return undefined;
  try {
    return JSON.parse(value) as T;
  } catch {
    throw new Error(`${flag} must be JSON`);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      'bitbucket-port': { type: 'string' },
      'bitrise-port': { type: 'string' },
      consumer: { type: 'string', multiple: true },
      'callback-url': { type: 'string' },
      'bitrise-token': { type: 'string', multiple: true },
      'bitbucket-seed': { type: 'string' },
      'bitrise-seed': { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }

  const consumers: BitbucketConsumer[] = (values.consumer ?? []).map((pair) => {
    const colon = pair.indexOf(':');
    if (colon < 1) throw new Error('--consumer must be <client id>:<secret>');
    return { clientId: pair.slice(0, colon), clientSecret: pair.slice(colon + 1), callbackUrl: values['callback-url'] };
  });
  const bitriseSeed = json<BitriseSeed>(values['bitrise-seed'], '--bitrise-seed') ?? {};
  const bitbucket = await startBitbucketSimulator({
    host: values.host,
    port: port(values['bitbucket-port'], '--bitbucket-port'),
    consumers: consumers.length ? consumers : undefined,
    seed: json<BitbucketSeed>(values['bitbucket-seed'], '--bitbucket-seed'),
  });
  const bitrise = await startBitriseSimulator({
    host: values.host,
    port: port(values['bitrise-port'], '--bitrise-port'),
    seed: { ...bitriseSeed, tokens: [...(bitriseSeed.tokens ?? []), ...(values['bitrise-token'] ?? [])] },
  });

  const summary = {
    bitbucket: { url: bitbucket.url, apiUrl: bitbucket.apiUrl, oauthUrl: bitbucket.oauthUrl, control: `${bitbucket.url}/_sim` },
    bitrise: { url: bitrise.url, apiUrl: bitrise.apiUrl, control: `${bitrise.url}/_sim` },
  };
  if (values.json) {
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  } else {
    const consumerNote = consumers.length
      ? consumers.map((c) => c.clientId).join(', ')
      : `${DEFAULT_BITBUCKET_CONSUMER.clientId} (built-in; secret in DEFAULT_BITBUCKET_CONSUMER)`;
    process.stdout.write(
      [
        `Bitbucket simulator  API ${summary.bitbucket.apiUrl}`,
        `                     OAuth ${summary.bitbucket.oauthUrl}`,
        `                     controls ${summary.bitbucket.control}  (consumer: ${consumerNote})`,
        `Bitrise simulator    API ${summary.bitrise.apiUrl}`,
        `                     controls ${summary.bitrise.control}  (POST /_sim/tokens to get a token)`,
        '',
      ].join('\n'),
    );
  }

  const stop = async () => {
    await Promise.allSettled([bitbucket.close(), bitrise.close()]);
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n${USAGE}\n`);
  process.exit(1);
});
