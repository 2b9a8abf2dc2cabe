import assert from 'node:assert/strict';
import { ConfigError } from '../../src/errors';

/** The problems a ConfigError lists; fails the test if the configuration was accepted. */
export function configProblems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    return err.problems;
  }
  assert.fail('configuration was accepted');
}
