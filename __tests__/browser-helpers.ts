// What the browser tests share: Debian's Chromium as playwright-core drives it (never a browser
// download), and a generated WAV long enough that a seek is a new ranged request.

/** The flags every Chromium of this project's tests runs with (nothing phones home, nothing updates). */
export const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
export const CHROMIUM = '/usr/bin/chromium';

/** A valid PCM WAV: 44-byte header, then a 440 Hz tone, 16-bit. 30 s at 48 kHz stereo is 5.76 MB: over nginx's default 1m, and long enough that a seek near the end is a new ranged request. */
export function wav(seconds: number, rate = 48_000, channels = 2): Buffer {
  const frames = seconds * rate;
  const data = Buffer.alloc(frames * channels * 2);
  for (let i = 0; i < frames; i++) {
    const v = Math.round(Math.sin((2 * Math.PI * 440 * i) / rate) * 8000);
    for (let c = 0; c < channels; c++) data.writeInt16LE(v, (i * channels + c) * 2);
  }
  const h = Buffer.alloc(44);
  h.write('RIFF', 0);
  h.writeUInt32LE(36 + data.length, 4);
  h.write('WAVE', 8);
  h.write('fmt ', 12);
  h.writeUInt32LE(16, 16); // PCM format chunk size
  h.writeUInt16LE(1, 20); // PCM
  h.writeUInt16LE(channels, 22);
  h.writeUInt32LE(rate, 24);
  h.writeUInt32LE(rate * channels * 2, 28); // bytes per second
  h.writeUInt16LE(channels * 2, 32); // bytes per frame
  h.writeUInt16LE(16, 34);
  h.write('data', 36);
  h.writeUInt32LE(data.length, 40);
  return Buffer.concat([h, data]);
}

/** Bytes per second of {@link wav}'s default format (48 kHz, stereo, 16-bit). */
export const BYTES_PER_SECOND = 48_000 * 2 * 2;
