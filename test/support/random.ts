/**
 * A small deterministic generator (a linear congruential one) for tests that draw random moments,
 * so a failing run can be replayed with the same seed. Returns numbers in [0, 1).
 */
export function seededRandom(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2_147_483_648;
    return state / 2_147_483_648;
  };
}
