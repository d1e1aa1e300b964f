// The incremental nodes-file parser is only faster: for any file, and any sequence of edits, it gives
// exactly what parsing the whole file gives (nodes, errors with their line numbers, fatal errors).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { NodesFileParser, parseNodesFile } from './nodes-file.js';

const entry = fc.record({
  name: fc.constantFrom('edge-a', 'edge-b', 'edge-c', 'Edge-A', 'bad name', ''),
  address: fc.constantFrom('192.0.2.11', '192.0.2.12', '10.0.0.1', 'not-an-ip', '2001:db8::1'),
  port: fc.constantFrom('10250', '0', '"x"', '70000'),
  style: fc.constantFrom('block', 'flow', 'scalar', 'comment', 'labels', 'unknown-key', 'dash-alone'),
});

function render(e: { name: string; address: string; port: string; style: string }, indent: string): string {
  const name = JSON.stringify(e.name);
  switch (e.style) {
    case 'block':
      return `${indent}- name: ${name}\n${indent}  addresses:\n${indent}    - ${e.address}\n${indent}  kubeletPort: ${e.port}`;
    case 'flow':
      return `${indent}- {name: ${name}, addresses: [${e.address}], kubeletPort: ${e.port}}`;
    case 'scalar':
      return `${indent}- just-a-string`;
    case 'comment':
      return `${indent}# a comment\n${indent}- name: ${name}  # trailing\n\n${indent}  addresses: [${e.address}]`;
    case 'labels':
      return `${indent}- name: ${name}\n${indent}  labels: {role: edge}\n${indent}  podCIDRs: [198.51.100.0/26]`;
    case 'unknown-key':
      return `${indent}- name: ${name}\n${indent}  colour: blue`;
    default:
      return `${indent}-\n${indent}  name: ${name}`;
  }
}

const file = fc.record({
  entries: fc.array(entry, { maxLength: 6 }),
  indent: fc.constantFrom('', '  '),
  prefix: fc.constantFrom('', '# nodes of the lab\n', '\n'),
  broken: fc.constantFrom('', '', '', 'other: 1\n', '  - name: [unclosed\n', '---\nnodes: []\n'),
});

const text = (f: { entries: { name: string; address: string; port: string; style: string }[]; indent: string; prefix: string; broken: string }): string =>
  `${f.prefix}nodes:\n${f.entries.map((e) => render(e, f.indent)).join('\n')}\n${f.broken}`;

describe('incremental nodes-file parser', () => {
  it('gives exactly what a whole parse gives, over any sequence of edits', () => {
    fc.assert(
      fc.property(fc.array(file, { minLength: 1, maxLength: 5 }), (files) => {
        const parser = new NodesFileParser();
        for (const f of files) assert.deepEqual(parser.parse(text(f), 'nodes.yaml'), parseNodesFile(text(f), 'nodes.yaml'));
      }),
      { numRuns: 500 },
    );
  });

  it('re-parses only the entries an edit changed (a 10,000-node file)', () => {
    const lines = Array.from({ length: 10_000 }, (_, i) => `  - name: edge-${i}\n    addresses: [10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}]`);
    const parser = new NodesFileParser();
    const first = parser.parse(`nodes:\n${lines.join('\n')}\n`, 'nodes.yaml');
    assert.equal(first.nodes.length, 10_000);
    lines[7] = '  - name: edge-7\n    addresses: [192.0.2.99]';
    const edited = `nodes:\n${lines.join('\n')}\n`;
    assert.deepEqual(parser.parse(edited, 'nodes.yaml'), parseNodesFile(edited, 'nodes.yaml'));
  });
});
