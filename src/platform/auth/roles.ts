export const roles = ['viewer', 'operator', 'admin', 'service'] as const;
export type Role = (typeof roles)[number];

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (roles as readonly string[]).includes(value);
}

/**
 * What a route requires: `public`, or the roles that may call it. Staff roles nest (an admin can
 * do what an operator can); `service` is a machine client and is listed explicitly where allowed.
 */
export type Access = 'public' | readonly Role[];

export const staffRoles: readonly Role[] = ['viewer', 'operator', 'admin'];
export const operatorRoles: readonly Role[] = ['operator', 'admin'];
export const adminRoles: readonly Role[] = ['admin'];

export type Principal = { subject: string; role: Role; keyId: string; tokenId: string };
