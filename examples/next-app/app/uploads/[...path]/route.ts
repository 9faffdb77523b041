import { createUploadsRoute } from 'upload-sync/next';

export const { GET, HEAD } = createUploadsRoute();
