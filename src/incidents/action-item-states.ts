import { transitionIn } from './states.ts';

/**
 * An action item's status machine as data, each transition with its reason. `postmortem-data.ts`
 * guards each status update with `where status = any(<allowed sources>)`.
 */

export const actionItemStatuses = ['open', 'done', 'cancelled'] as const;
export type ActionItemStatus = (typeof actionItemStatuses)[number];

export const actionItemTransitions = {
  completed: { from: ['open'], to: 'done', reason: 'the work is done' },
  dropped: { from: ['open'], to: 'cancelled', reason: 'the work will not be done' },
  reopened: { from: ['done', 'cancelled'], to: 'open', reason: 'the work is needed after all' },
} as const satisfies Record<
  string,
  { from: readonly ActionItemStatus[]; to: ActionItemStatus; reason: string }
>;
export type ActionItemTransition = keyof typeof actionItemTransitions;

/** The one transition that leads from `from` to `to`, if any. */
export function actionItemTransitionBetween(
  from: ActionItemStatus,
  to: ActionItemStatus,
): ActionItemTransition | undefined {
  return transitionIn<ActionItemStatus, ActionItemTransition>(actionItemTransitions, from, to);
}

/** The status an item is added in, with this reason. */
export const actionItemAddedReason = 'added';
