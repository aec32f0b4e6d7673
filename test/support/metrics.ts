/** One sample of Prometheus' text format: `name{label="value",…} value`. */
export type Sample = { name: string; labels: Record<string, string>; value: number };

/** The samples of a `/metrics` answer, with or without labels (comments skipped). */
export function samplesOf(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const match of text.matchAll(/^(\w+)(?:\{([^}]*)\})? (\S+)$/gm)) {
    const labels = Object.fromEntries(
      [...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((pair) => [pair[1] ?? '', pair[2] ?? '']),
    );
    samples.push({ name: match[1] ?? '', labels, value: Number(match[3]) });
  }
  return samples;
}

/** The samples scraped from `url`, none when it does not answer 200. */
export async function scrapeSamples(url: string): Promise<Sample[]> {
  const response = await fetch(url);
  return response.ok ? samplesOf(await response.text()) : [];
}
