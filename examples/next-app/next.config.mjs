/** @type {import('next').NextConfig} */
const nextConfig = {
  output: 'standalone',
  // This app is its own project: trace files from its folder. (Without this, Next takes the
  // outermost folder with a lockfile as the root, here the repository around the example, and
  // puts server.js under .next/standalone/examples/next-app/. In a monorepo, set the monorepo's root.)
  outputFileTracingRoot: import.meta.dirname,
  turbopack: { root: import.meta.dirname },
  // The uploads live in public/uploads (the canonical folder, outside the build output). File
  // tracing must not copy them into .next/standalone: `upload-sync sync` mirrors them there.
  outputFileTracingExcludes: {
    '*': ['./public/uploads/**/*'],
  },
};

export default nextConfig;
