import { expect } from 'vitest';
import { compromisedAdminDrill } from '../../src/drills/compromised-admin.ts';
import { drillTest } from '../support/drill.ts';

drillTest(compromisedAdminDrill, {
  does: 'suspends the admin, freezes payouts and rejects their proposal with the runbook, and no money moves',
  figures: (figures) => {
    expect(figures.suspensionToRefusedMs).toBeGreaterThanOrEqual(0);
  },
});
