#!/usr/bin/env node
import { reportFailure } from '../src/cli/context.ts';
// The CLI is TypeScript run by Node's type stripping (Node >= 22.18 or 23.6).
import { buildProgram } from '../src/cli/main.ts';

buildProgram()
  .parseAsync(process.argv)
  .catch((error) => {
    process.exitCode = reportFailure(error);
  });
