// OpenAI's `stop`: generation ends where the text first contains one of the stop strings, which is not returned.
// Text arrives token by token, and a stop string can span tokens, so text that could still be the start of a stop
// string is held back until the next piece decides it (a streaming client never sees text that is later cut).

export interface StopResult {
  /** Text that is now certain to be part of the output. */
  text: string;
  /** A stop string was found; `text` ends just before it and nothing more follows. */
  stopped: boolean;
}

export class StopMatcher {
  private held = '';
  private done = false;

  constructor(private readonly stops: readonly string[]) {}

  push(piece: string): StopResult {
    if (this.done) return { text: '', stopped: true };
    const buf = this.held + piece;
    let cut = -1;
    for (const s of this.stops) {
      const i = buf.indexOf(s);
      if (i >= 0 && (cut < 0 || i < cut)) cut = i;
    }
    if (cut >= 0) {
      this.done = true;
      this.held = '';
      return { text: buf.slice(0, cut), stopped: true };
    }
    // Hold back the longest tail of buf that is a proper prefix of some stop string.
    let keep = 0;
    for (const s of this.stops) {
      for (let n = Math.min(s.length - 1, buf.length); n > keep; n--) {
        if (buf.endsWith(s.slice(0, n))) {
          keep = n;
          break;
        }
      }
    }
    this.held = buf.slice(buf.length - keep);
    return { text: buf.slice(0, buf.length - keep), stopped: false };
  }

  /** The end of generation: whatever was held back is output after all. */
  flush(): string {
    const rest = this.done ? '' : this.held;
    this.held = '';
    return rest;
  }
}
