/**
 * @module graph/neo4j/flow.test
 * Both ends of a cross-host socket compute the same flow id from their mirrored views.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalIp, socketFlowId } from './flow.js';

test('both ends of a flow compute one id', () => {
  const a = { ip: '10.0.0.1', port: 43210 };
  const b = { ip: '10.0.0.2', port: 443 };
  assert.equal(socketFlowId('tcp', a, b), socketFlowId('tcp', b, a));
  assert.equal(socketFlowId('tcp', a, b), 'sock:net:tcp:10.0.0.1:43210-10.0.0.2:443');
  assert.notEqual(socketFlowId('tcp', a, b), socketFlowId('udp', a, b));
  assert.notEqual(socketFlowId('tcp', a, b), socketFlowId('tcp', a, { ...b, port: 444 }));
});

test('addresses are canonical: v4-mapped IPv6 is IPv4, IPv6 is compressed', () => {
  assert.equal(canonicalIp('::ffff:10.0.0.1'), '10.0.0.1');
  assert.equal(canonicalIp('[::FFFF:0a00:0001]'), '10.0.0.1');
  assert.equal(canonicalIp('2001:0db8:0000:0000:0000:0000:0000:0001'), '2001:db8::1');
  assert.equal(
    socketFlowId('tcp', { ip: '2001:db8::1', port: 5 }, { ip: '::ffff:10.0.0.9', port: 6 }),
    socketFlowId('tcp', { ip: '10.0.0.9', port: 6 }, { ip: '2001:0DB8:0:0::1', port: 5 }),
  );
  assert.throws(() => socketFlowId('tcp', { ip: '10.0.0.1', port: 70000 }, { ip: '10.0.0.2', port: 1 }), RangeError);
});
