import { assert } from '../platform/assert.ts';
import type { TaskMap } from '../platform/jobs.ts';
import type { Runtime } from '../platform/runtime.ts';
import { pendingProofsFrom } from './metrics.ts';
import { proofNetwork, recheckProof, verifyProofTask } from './proofs.ts';

/**
 * verify_payment_proof: decides a pending payment proof (src/deposits/proofs.ts). Enqueued with
 * the proof, keyed by its id; it throws while no Stellar path can decide, and graphile-worker runs
 * it again after its backoff, at most verifyProofAttemptsMax times. worker_runs_total counts every
 * run: a failure is a run that could not decide yet.
 */
export function depositTasks(runtime: Runtime): TaskMap {
  pendingProofsFrom(runtime.sql);
  const network = proofNetwork(runtime.config);
  return {
    [verifyProofTask]: async (payload) => {
      const proofId = (payload as { proofId?: unknown } | null)?.proofId;
      assert(
        typeof proofId === 'string',
        `${verifyProofTask} needs a proofId, got ${JSON.stringify(payload)}`,
      );
      await recheckProof(runtime.sql, proofId, network, runtime.logger);
    },
  };
}
