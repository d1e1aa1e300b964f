// Kubernetes label selectors, equality-based syntax only: `key`, `!key`, `key=value` (or `==`),
// `key!=value`, joined by commas (AND). That covers the ways edge nodes are marked in practice
// (`node-role.kubernetes.io/edge`, OpenYurt's `openyurt.io/is-edge-worker=true`). Set-based syntax
// (`key in (a,b)`, `notin`) is refused when the selector is parsed rather than guessed at.

export type Requirement =
  | { readonly op: 'exists' | 'notExists'; readonly key: string }
  | { readonly op: 'equals' | 'notEquals'; readonly key: string; readonly value: string };

export interface LabelSelector {
  /** The selector as written. */
  readonly text: string;
  readonly requirements: readonly Requirement[];
  matches(labels: Readonly<Record<string, string>>): boolean;
}

const NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const EQUALITY = /^([^=!\s]*)\s*(==|=|!=)\s*(.*)$/;
const SUPPORTED = 'use key, !key, key=value or key!=value, joined by commas';

/** Parses `text`; throws an Error naming the selector and the problem if it is not supported syntax. */
export function parseLabelSelector(text: string): LabelSelector {
  const fail = (reason: string): never => {
    throw new Error(`invalid label selector "${text}": ${reason}`);
  };
  if (text.trim() === '') fail(`it is empty (it would match every node); ${SUPPORTED}`);
  if (/[()]/.test(text) || /(^|[\s,])[^\s,]+\s+(in|notin)(\s|$)/.test(text)) {
    fail(`set-based requirements ("in", "notin") are not supported; ${SUPPORTED}`);
  }
  if (/[<>]/.test(text)) fail(`"<" and ">" are not label selector operators; ${SUPPORTED}`);

  const requirements = text.split(',').map((raw): Requirement => {
    const part = raw.trim();
    if (part === '') return fail('it has an empty requirement (a stray comma?)');
    if (part.startsWith('!')) {
      const key = part.slice(1).trim();
      return { op: 'notExists', key: checkedKey(key, fail) };
    }
    const equality = EQUALITY.exec(part);
    if (equality !== null) {
      const [, key = '', operator, value = ''] = equality;
      return {
        op: operator === '!=' ? 'notEquals' : 'equals',
        key: checkedKey(key, fail),
        value: checkedValue(value, fail),
      };
    }
    if (/[\s=!]/.test(part)) fail(`"${part}" is not a requirement; ${SUPPORTED}`);
    return { op: 'exists', key: checkedKey(part, fail) };
  });

  return {
    text,
    requirements,
    matches: (labels) => requirements.every((requirement) => matchesOne(requirement, labels)),
  };
}

function matchesOne(requirement: Requirement, labels: Readonly<Record<string, string>>): boolean {
  const has = Object.hasOwn(labels, requirement.key);
  switch (requirement.op) {
    case 'exists':
      return has;
    case 'notExists':
      return !has;
    case 'equals':
      return has && labels[requirement.key] === requirement.value;
    case 'notEquals':
      // As in Kubernetes: a node without the label matches `key!=value` too.
      return !has || labels[requirement.key] !== requirement.value;
  }
}

/** Label keys are `[prefix/]name`: prefix a DNS subdomain of at most 253, name at most 63 characters. */
function checkedKey(key: string, fail: (reason: string) => never): string {
  const slash = key.indexOf('/');
  const prefix = slash === -1 ? undefined : key.slice(0, slash);
  const name = slash === -1 ? key : key.slice(slash + 1);
  if (key === '') fail('a requirement has no key');
  if (prefix !== undefined && (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) {
    fail(`"${key}": the key prefix "${prefix}" must be a lowercase DNS subdomain of at most 253 characters`);
  }
  if (name.length > 63 || !NAME.test(name)) {
    fail(
      `"${key}": the key name "${name}" must be at most 63 letters, digits, "-", "_" or ".", starting and ending with a letter or digit`,
    );
  }
  return key;
}

function checkedValue(value: string, fail: (reason: string) => never): string {
  if (value !== '' && (value.length > 63 || !NAME.test(value))) {
    fail(`the value "${value}" must be at most 63 letters, digits, "-", "_" or ".", starting and ending with a letter or digit`);
  }
  return value;
}
