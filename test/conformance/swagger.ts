import { execFile } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import Ajv, { type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';

/**
 * The official provider Swagger files and what the conformance suites do with them. The files are
 * not part of the repository: PROVIDER_SPECS_DIR names the folder that holds them.
 */

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

export const SPEC_FILES = {
  /** An unchanged copy of https://api.bitbucket.org/swagger.json. */
  bitbucket: 'bitbucket-cloud.swagger.json',
  /** An unchanged copy of https://api-docs.bitrise.io/docs/swagger.json. */
  bitrise: 'bitrise.swagger.json',
} as const;

/**
 * The folder named by PROVIDER_SPECS_DIR, or why it cannot be used. There is deliberately no
 * default: a missing folder must fail loudly, never skip the checks or find some other copy.
 */
export function providerSpecsDir(env: NodeJS.ProcessEnv = process.env): { dir: string } | { problem: string } {
  const raw = env.PROVIDER_SPECS_DIR;
  const expected = Object.values(SPEC_FILES).join(' and ');
  if (!raw) {
    return {
      problem:
        `PROVIDER_SPECS_DIR is not set. The conformance checks need the official Swagger files (${expected}); ` +
        'set PROVIDER_SPECS_DIR to the folder holding them, e.g. PROVIDER_SPECS_DIR=../shared/provider-specs npm run test:conformance',
    };
  }
  const dir = path.resolve(raw);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return { problem: `PROVIDER_SPECS_DIR=${raw}: ${dir} is not a folder.` };
  const missing = Object.values(SPEC_FILES).filter((f) => !existsSync(path.join(dir, f)));
  if (missing.length) return { problem: `PROVIDER_SPECS_DIR=${raw}: ${missing.join(' and ')} not found in ${dir}.` };
  return { dir };
}

export function specPath(file: string): string {
  const found = providerSpecsDir();
  if ('problem' in found) throw new Error(found.problem);
  return path.join(found.dir, file);
}

// ---------------------------------------------------------------------------------------------
// Swagger 2.0 documents

export interface Parameter {
  name: string;
  in: string;
  enum?: unknown[];
}
export interface Operation {
  parameters?: Parameter[];
  responses: Record<string, { schema?: Json }>;
}
export type PathItem = Record<string, Operation> & { parameters?: Parameter[] };
export interface SwaggerDoc {
  basePath: string;
  paths: Record<string, PathItem>;
  definitions: Record<string, Json>;
  securityDefinitions: Record<string, { authorizationUrl?: string; tokenUrl?: string }>;
}

/** The document as saved, `$ref`s and all. */
export function readSpec(file: string): SwaggerDoc {
  return JSON.parse(readFileSync(specPath(file), 'utf8')) as SwaggerDoc;
}

/**
 * Dereferences a saved spec with swagger-parser in a plain Node child process. swagger-parser 13
 * depends on the ESM-only json-schema-ref-parser, which Jest's CommonJS runtime cannot
 * `require()` before Node 24.9 while Node itself can (20.19+). Each call parses the file afresh,
 * so the mutating dereference never touches a shared copy. Circular refs (repository.parent →
 * repository, commit.parents → commit…) stay as `$ref`s, which keeps the result JSON and lets Ajv
 * resolve them against the document registered in SpecValidator.
 */
const DEREFERENCE = `
const SwaggerParser = require('@apidevtools/swagger-parser');
const spec = JSON.parse(require('node:fs').readFileSync(process.argv[1], 'utf8'));
SwaggerParser.dereference(spec, { dereference: { circular: 'ignore' } }).then(
  (api) => process.stdout.write(JSON.stringify(api)),
  (err) => { console.error(err); process.exit(1); },
);`;

export async function loadSpec(file: string): Promise<SwaggerDoc> {
  const { stdout } = await promisify(execFile)(process.execPath, ['-e', DEREFERENCE, specPath(file)], {
    cwd: path.resolve(__dirname, '../..'),
    maxBuffer: 256 * 1024 * 1024,
  });
  return JSON.parse(stdout) as SwaggerDoc;
}

/**
 * The real Bitrise API sends `null` for unset fields its spec types as `string` (finished_at,
 * commit_message, tag… in the captures
 * https://github.com/bitrise-io/bitrise-mcp/blob/5247c79f565dd4f9ee2f5bf09c1e4c2e7f5b75bd/devenv/test-responses/before/list_builds.json
 * https://github.com/bitrise-io/bitrise-mcp/blob/45001641c34d6972a5ae27ca4ac8327e3b08394b/devenv/test-responses/before/list_pipelines.json).
 * That one difference is allowed by widening `type: string` to `[string, null]` in the definitions
 * and response schemas of a dereferenced document (in place; returns it). Every other type keeps
 * its spec meaning, so the simulator leaves out what it cannot send typed (the real API also sends
 * `credit_cost: null` and `artifacts: null` there, which the zod schemas accept).
 */
export function allowNullStrings(doc: SwaggerDoc): SwaggerDoc {
  const seen = new Set<unknown>();
  const widen = (node: unknown): void => {
    if ((!isObject(node) && !Array.isArray(node)) || seen.has(node)) return;
    seen.add(node);
    if (isObject(node) && node.type === 'string') {
      node.type = ['string', 'null'];
      if (Array.isArray(node.enum)) node.enum = [...(node.enum as unknown[]), null];
    }
    for (const v of Object.values(node)) widen(v);
  };
  widen(doc.definitions);
  for (const item of Object.values(doc.paths)) {
    for (const op of Object.values(item)) if (isObject(op) && isObject(op.responses)) widen(op.responses);
  }
  return doc;
}

/** Swagger 2.0 `format`s that describe numeric/byte encodings rather than string syntax. */
const SWAGGER_TYPE_FORMATS = ['int32', 'int64', 'float', 'double', 'byte', 'binary', 'password'];

const pointer = (...parts: string[]) => parts.map((p) => encodeURIComponent(p.replace(/~/g, '~0').replace(/\//g, '~1'))).join('/');

/** Ajv validators for a document's operations and definitions. */
export class SpecValidator {
  private readonly ajv: Ajv;
  private readonly compiled = new Map<string, ValidateFunction>();

  constructor(
    private readonly id: string,
    readonly doc: SwaggerDoc,
  ) {
    // Swagger 2.0 schemas are a draft-04 dialect; none of the operations used here rely on the
    // draft-04-only boolean `exclusiveMinimum`, so Ajv's default draft with strict mode off
    // (unknown keywords such as `discriminator`, `x-*` and `example` are ignored) is faithful.
    this.ajv = new Ajv({ strict: false, allErrors: true, logger: false });
    addFormats(this.ajv);
    for (const f of SWAGGER_TYPE_FORMATS) this.ajv.addFormat(f, true);
    this.ajv.addSchema({ $id: id, definitions: doc.definitions, paths: doc.paths });
  }

  /** The spec path template serving `concretePath` (which includes the base path). */
  template(concretePath: string): string {
    const rel = concretePath.replace(/\/$/, '').slice(this.doc.basePath.length) || '/';
    const segs = rel.split('/');
    let best: { template: string; literals: number } | undefined;
    for (const template of Object.keys(this.doc.paths)) {
      const tsegs = template.replace(/\/$/, '').split('/');
      if (tsegs.length !== segs.length) continue;
      let literals = 0;
      const ok = tsegs.every((t, i) => {
        if (t.startsWith('{') && t.endsWith('}')) return segs[i] !== '';
        literals += 1;
        return t === segs[i];
      });
      if (ok && (!best || literals > best.literals)) best = { template, literals };
    }
    if (!best) throw new Error(`no operation in ${this.id} for ${concretePath}`);
    return best.template;
  }

  operation(template: string): Operation {
    const op = this.doc.paths[template]?.get;
    if (!op) throw new Error(`${this.id}: ${template} has no GET operation`);
    return op;
  }

  /** The response validator for a status, or undefined when the operation gives it no schema. */
  response(template: string, status: number): ValidateFunction | undefined {
    if (!this.operation(template).responses[String(status)]?.schema) return undefined;
    return this.compile(`${this.id}#/paths/${pointer(template, 'get', 'responses', String(status), 'schema')}`);
  }

  definition(name: string): ValidateFunction {
    if (!this.doc.definitions[name]) throw new Error(`${this.id}: no definition ${name}`);
    return this.compile(`${this.id}#/definitions/${pointer(name)}`);
  }

  errors(validate: ValidateFunction, body: unknown): string[] {
    return validate(body)
      ? []
      : (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''} ${JSON.stringify(e.params)}`);
  }

  /**
   * Query parameters the client sent that the operation does not declare, values outside a
   * declared enum, and repeats. `generic` are parameters the spec documents for all endpoints in
   * its narrative rather than per operation (pagination, filtering, partial responses).
   */
  paramErrors(template: string, query: URLSearchParams, generic: string[], repeatable: string[] = []): string[] {
    const declared = [...(this.doc.paths[template]?.parameters ?? []), ...(this.operation(template).parameters ?? [])].filter(
      (p) => p.in === 'query',
    );
    const out: string[] = [];
    for (const name of new Set(query.keys())) {
      const values = query.getAll(name);
      const param = declared.find((p) => p.name === name);
      if (!param && !generic.includes(name)) out.push(`undeclared query parameter ${name}`);
      // "To reverse the order, prefix the field name with a hyphen" applies to every `sort`
      // (https://developer.atlassian.com/cloud/bitbucket/rest/intro/#sorting-query-results), so the
      // enum names fields, not directions.
      const bare = (v: string) => (name === 'sort' ? v.replace(/^-/, '') : v);
      if (param?.enum)
        for (const v of values) if (!param.enum.includes(bare(v))) out.push(`${name}=${v} not in ${JSON.stringify(param.enum)}`);
      if (values.length > 1 && !repeatable.includes(name)) out.push(`${name} repeated`);
    }
    return out;
  }

  private compile(ref: string): ValidateFunction {
    let v = this.compiled.get(ref);
    if (!v) {
      v = this.ajv.compile({ $ref: ref });
      this.compiled.set(ref, v);
    }
    return v;
  }
}

// ---------------------------------------------------------------------------------------------
// Zod schemas held against Swagger definitions

/**
 * The Swagger schema nodes that describe one place of a document. A place can have several:
 * `allOf` parts, and — because Swagger 2.0's `discriminator` lets an instance be any definition
 * that extends the declared one (`pipeline_state` → `pipeline_state_completed`, `account` →
 * `user`) — every such subtype. A field "exists" at a place when any of its nodes declares it.
 */
export class SwaggerShapes {
  private readonly subtypes = new Map<string, string[]>();

  constructor(readonly doc: SwaggerDoc) {
    for (const [name, def] of Object.entries(doc.definitions)) {
      for (const part of Array.isArray(def.allOf) ? def.allOf : []) {
        const base = isObject(part) && typeof part.$ref === 'string' ? refName(part.$ref) : undefined;
        if (base) this.subtypes.set(base, [...(this.subtypes.get(base) ?? []), name]);
      }
    }
  }

  /** The nodes of a definition, its `allOf` parts and its subtypes, transitively. */
  definition(name: string): Json[] {
    if (!this.doc.definitions[name]) throw new Error(`no definition ${name}`);
    return this.expand([{ $ref: `#/definitions/${name}` }]);
  }

  /** The nodes of an operation's response schema. */
  response(template: string, status: number): Json[] {
    const schema = this.doc.paths[template]?.get?.responses[String(status)]?.schema;
    if (!schema) throw new Error(`${template} documents no schema for ${status}`);
    return this.expand([schema]);
  }

  property(nodes: Json[], key: string): Json[] {
    return this.expand(nodes.flatMap((n) => (isObject(n.properties) && isObject(n.properties[key]) ? [n.properties[key]] : [])));
  }

  items(nodes: Json[]): Json[] {
    return this.expand(nodes.flatMap((n) => (isObject(n.items) ? [n.items] : [])));
  }

  /** JSON types the nodes allow; empty when none says (an untyped `{}` allows anything). */
  types(nodes: Json[]): Set<string> {
    const out = new Set<string>();
    for (const n of nodes) {
      if (typeof n.type === 'string') {
        out.add(n.type);
      } else if (Array.isArray(n.type)) {
        for (const t of n.type) if (typeof t === 'string') out.add(t);
      } else if (isObject(n.properties)) {
        out.add('object');
      }
    }
    return out;
  }

  /**
   * A `$ref` where a value is declared stands for the definition and every subtype of it; a `$ref`
   * in an `allOf` names a base whose own parts apply, not its other subtypes (else everything
   * built on `object` would declare every field of the document).
   */
  private expand(nodes: Json[], seen = new Set<string | Json>(), subtypes = true): Json[] {
    const out: Json[] = [];
    for (const node of nodes) {
      if (typeof node.$ref === 'string') {
        const name = refName(node.$ref);
        const def = name === undefined ? undefined : this.doc.definitions[name];
        if (!name || !def) throw new Error(`unresolvable ${node.$ref}`);
        const key = `${name}${subtypes ? '+' : ''}`;
        if (seen.has(key)) continue;
        seen.add(key);
        out.push(...this.expand([def], seen, false));
        if (subtypes)
          out.push(
            ...this.expand(
              (this.subtypes.get(name) ?? []).map((s) => ({ $ref: `#/definitions/${s}` })),
              seen,
              true,
            ),
          );
        continue;
      }
      if (seen.has(node)) continue;
      seen.add(node);
      out.push(node);
      if (Array.isArray(node.allOf)) out.push(...this.expand(node.allOf.filter(isObject), seen, false));
    }
    return out;
  }
}

function refName(ref: string): string | undefined {
  return /^#\/definitions\/(.+)$/.exec(ref)?.[1];
}

/** A documented difference between a zod schema and the Swagger document. */
export interface Deviation {
  /** Where: `<schema name>` then `.field` and `[]` for array items, e.g. `pipeline.trigger.name`. */
  at: string;
  /** `missing`: the spec has no such field there; `type`: the spec types it differently. */
  kind: 'missing' | 'type';
  why: string;
  /** Public sources for the difference. */
  sources: string[];
}

/**
 * Compares a zod schema (as JSON Schema, from `z.toJSONSchema`) with the Swagger nodes of the same
 * place: every property the zod schema declares must exist there, with a compatible JSON type.
 * Nullability is not compared (the zod schemas accept `null` where providers send it, which the
 * specs never say); unknown extra fields are not either (both sides let them through).
 */
export function compareWithSwagger(
  shapes: SwaggerShapes,
  zodJson: unknown,
  nodes: Json[],
  at: string,
): { at: string; kind: Deviation['kind']; detail: string }[] {
  const found: { at: string; kind: Deviation['kind']; detail: string }[] = [];
  const visit = (z: unknown, sw: Json[], where: string): void => {
    for (const variant of variants(z)) {
      const zType = jsonType(variant);
      if (zType === undefined) continue;
      const swTypes = shapes.types(sw);
      if (swTypes.size && !compatible(zType, swTypes)) {
        found.push({ at: where, kind: 'type', detail: `zod ${zType}, spec ${[...swTypes].join('|')}` });
        continue;
      }
      if (zType === 'object' && isObject(variant.properties)) {
        for (const [key, sub] of Object.entries(variant.properties)) {
          const next = shapes.property(sw, key);
          if (!next.length) found.push({ at: `${where}.${key}`, kind: 'missing', detail: 'not declared by the spec' });
          else visit(sub, next, `${where}.${key}`);
        }
      }
      if (zType === 'array' && variant.items !== undefined) visit(variant.items, shapes.items(sw), `${where}[]`);
    }
  };
  visit(zodJson, nodes, at);
  return found;
}

/** The non-null alternatives of a JSON Schema node (`anyOf` flattened). */
function variants(node: unknown): Json[] {
  if (!isObject(node)) return [];
  const alternatives = node.anyOf ?? node.oneOf;
  if (Array.isArray(alternatives)) return alternatives.flatMap(variants);
  return node.type === 'null' ? [] : [node];
}

function jsonType(node: Json): string | undefined {
  if (typeof node.type === 'string') return node.type;
  if (node.const !== undefined) return typeof node.const === 'number' ? 'number' : typeof node.const;
  return undefined;
}

function compatible(zType: string, swTypes: Set<string>): boolean {
  if (swTypes.has(zType)) return true;
  // Every integer is a number; a zod number where the spec says integer is not compatible.
  return zType === 'integer' && swTypes.has('number');
}
