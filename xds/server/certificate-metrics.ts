// When the xDS server's own certificates expire, read from their files at every scrape (so a rotated
// file shows at once): the serving certificate of --tls-dir, the admin and probe client certificates.

import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Gauge, type Registry } from 'prom-client';

/** `dirs`: a purpose ("xds", "admin", "probe") → a directory holding tls.crt. */
export function certificateMetrics(registry: Registry, dirs: Readonly<Record<string, string | undefined>>): void {
  new Gauge({
    name: 'xds_certificate_expiry_timestamp_seconds',
    help: "When each of the xDS server's certificates expires (Unix time), by purpose: xds (its serving certificate), admin, probe",
    labelNames: ['purpose'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [purpose, dir] of Object.entries(dirs)) {
        if (dir === undefined) continue;
        try {
          this.set({ purpose }, Date.parse(new X509Certificate(readFileSync(join(dir, 'tls.crt'))).validTo) / 1000);
        } catch {
          // A file being replaced: the series is absent for this scrape.
        }
      }
    },
  });
}
