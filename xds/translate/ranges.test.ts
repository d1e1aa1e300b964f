import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCidr } from '../model/cidr.js';
import { cidrRegex, numberRangeRegex, wildcardDomain } from './ranges.js';

describe('pod CIDR matching', () => {
  it('numberRangeRegex matches exactly lo..hi for every range within an octet', () => {
    for (let lo = 0; lo <= 255; lo += 7) {
      for (let hi = lo; hi <= 255; hi += 11) {
        const re = new RegExp(`^${numberRangeRegex(lo, hi)}$`);
        for (let n = 0; n <= 255; n++) assert.equal(re.test(String(n)), n >= lo && n <= hi, `${n} in ${lo}..${hi}: ${re}`);
        assert.equal(re.test('007'), false, 'no leading zeros');
      }
    }
  });

  it('cidrRegex matches exactly the addresses of the range', () => {
    const cidr = parseCidr('10.244.2.128/25');
    assert.ok(cidr);
    const re = new RegExp(`^${cidrRegex(cidr)}$`);
    assert.ok(re.test('10.244.2.128') && re.test('10.244.2.255'));
    assert.ok(!re.test('10.244.2.127') && !re.test('10.244.3.200') && !re.test('10.244.2.1280'));
    const wide = parseCidr('10.244.0.0/14');
    assert.ok(wide);
    const wideRe = new RegExp(`^${cidrRegex(wide)}$`);
    assert.ok(wideRe.test('10.247.255.1') && !wideRe.test('10.248.0.1'));
    assert.equal(wildcardDomain(wide), '10.*');
    assert.equal(wildcardDomain(cidr), '10.244.2.*');
  });
});
