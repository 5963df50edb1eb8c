// carbon_gate.ts: asks `lowcarb serve` which connected clients train each DISCO round.
type Decision = { round: number; run_now: boolean; wait_until: string | null;
                  selected: string[]; deferred: string[]; reason: string };
type Say = (client: string, type: 8 | 9) => void; // WaitingForMoreParticipants, EnoughParticipants

export class CarbonGate {
  readonly zones = new Map<string, string>(); // connected clients and their zones
  chosen = new Set<string>();                 // this round's selection
  private paused = new Set<string>();
  private round = 1;                          // lowcarb's next round (1-based)
  constructor(private task: string, private k: number,
              private base = process.env.LOWCARB_URL ?? "http://127.0.0.1:8787",
              private token = process.env.SERVICE_TOKEN) {}

  private async post<T>(path: string, body: unknown): Promise<T> {
    const res = await fetch(this.base + path, {
      method: "POST", body: JSON.stringify(body), signal: AbortSignal.timeout(5000),
      headers: { "content-type": "application/json",
                 ...(this.token ? { authorization: `Bearer ${this.token}` } : {}) } });
    if (!res.ok) throw new Error(`lowcarb ${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  }

  /** A round opens: who trains in it? (A retried round number gets the same answer.) */
  async open(): Promise<Decision | null> {
    const candidates = [...this.zones].map(([id, zone]) => ({ id, zone }));
    const k = Math.min(this.k, candidates.length);
    const d = await this.post<Decision>("/v1/select", { task: this.task, round: this.round,
                                                        k, candidates }).catch(() => null);
    // lowcarb unreachable: DISCO's own rule, everyone trains.
    this.chosen = new Set(d === null ? this.zones.keys() : d.run_now ? d.selected : []);
    return d;
  }

  /** A client waits for the server's answer: answer it now (true), or hold it. */
  answerNow(client: string, say: Say): boolean {
    if (!this.chosen.has(client)) {
      if (!this.paused.has(client)) { this.paused.add(client); say(client, 8); }
      return false; // held: one pause, and no answer until a round chooses it
    }
    if (this.paused.delete(client)) say(client, 9); // resumed only with its answer
    return true;
  }

  /** The round closed: report it (chosen clients that sent nothing trained nothing). */
  async done(contributors: Iterable<string>, metrics: Record<string, number> = {}): Promise<void> {
    const sent = new Set(contributors);
    const energy_kwh = Object.fromEntries([...this.chosen].filter((c) => !sent.has(c))
                                          .map((c) => [c, 0]));
    await this.post("/v1/complete", { task: this.task, round: this.round,
                                      metrics: { contributors: sent.size, ...metrics },
                                      energy_kwh }).catch(() => null);
    this.round += 1;
  }
}
