import { expect } from 'vitest';
import { disputedReleaseDrill } from '../../src/drills/disputed-release.ts';
import { drillTest } from '../support/drill.ts';

drillTest(disputedReleaseDrill, {
  does: 'refuses a release on a disputed hold, fires the alert’s expression, and resolves the dispute once through two admins',
  figures: (figures) => {
    expect(figures.attemptsCounted).toBe(1);
    expect(figures.resolutions).toBe(1);
  },
});
