/** Jest in native ESM mode (run with --experimental-vm-modules), TypeScript through @swc/jest. */
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  testMatch: ['<rootDir>/__tests__/**/*.test.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: {
    '^.+\\.ts$': [
      '@swc/jest',
      {
        jsc: { parser: { syntax: 'typescript' }, target: 'es2022' },
        module: { type: 'es6' },
      },
    ],
  },
  testTimeout: 60_000,
  // The S3 test gateway: started by the first test file that needs it, stopped at the end (__tests__/s3-helpers.ts).
  globalSetup: '<rootDir>/__tests__/global-setup.mjs',
  globalTeardown: '<rootDir>/__tests__/global-teardown.mjs',
};
