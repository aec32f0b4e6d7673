import { expect } from 'vitest';
import { escrowLeakDrill } from '../../src/drills/escrow-leak.ts';
import { drillTest } from '../support/drill.ts';

drillTest(escrowLeakDrill, {
  does: 'finds money in escrow that no hold explains, shows it in triage, returns it with a two-person adjustment, and the finding resolves',
  figures: (figures) => {
    expect(figures.detectionMs).toBeGreaterThan(0);
    expect(figures.escrowMatchesHolds).toBe(1);
  },
});
