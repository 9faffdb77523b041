/** @type {import('next').NextConfig} */
const nextConfig = {
  output: 'standalone',
  // The uploads live in public/uploads (the canonical folder, outside the build output). File
  // tracing must not copy them into .next/standalone: `upload-sync sync` mirrors them there.
  outputFileTracingExcludes: {
    '*': ['./public/uploads/**/*'],
  },
};

export default nextConfig;
