import { expect } from 'vitest';
import { jwtKeyRotationDrill } from '../../src/drills/jwt-key-rotation.ts';
import { drillTest } from '../support/drill.ts';

drillTest(jwtKeyRotationDrill, {
  does: 'rotates the signing key across two instances without a restart, and refuses tokens of a retired leaked key on both',
  figures: (figures) => {
    expect(figures.retirementToRefusedMs).toBeGreaterThanOrEqual(0);
  },
});
