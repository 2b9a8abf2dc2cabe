/** Collects stream chunks and hands them out in pieces of an exact size, copying only what it must. */
export class ChunkBuffer {
  private parts: Buffer[] = [];
  length = 0;

  push(data: Buffer): void {
    if (data.length === 0) return;
    this.parts.push(data);
    this.length += data.length;
  }

  /** Removes and returns the first `n` bytes (n <= length). */
  take(n: number): Buffer {
    if (n > this.length) throw new RangeError(`cannot take ${n} of ${this.length} bytes`);
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const head = this.parts[0]!;
      const want = n - filled;
      if (head.length <= want) {
        head.copy(out, filled);
        filled += head.length;
        this.parts.shift();
      } else {
        head.copy(out, filled, 0, want);
        this.parts[0] = head.subarray(want);
        filled += want;
      }
    }
    this.length -= n;
    return out;
  }

  takeAll(): Buffer {
    return this.take(this.length);
  }

  /**
   * Removes the first `n` bytes (n <= length) and returns them as the pieces they arrived in, without
   * copying: a cipher can take them one by one, so a 1 MiB chunk is never assembled in a buffer of its own.
   */
  takePieces(n: number): Buffer[] {
    if (n > this.length) throw new RangeError(`cannot take ${n} of ${this.length} bytes`);
    const pieces: Buffer[] = [];
    let left = n;
    while (left > 0) {
      const head = this.parts[0]!;
      if (head.length <= left) {
        pieces.push(head);
        left -= head.length;
        this.parts.shift();
      } else {
        pieces.push(head.subarray(0, left));
        this.parts[0] = head.subarray(left);
        left = 0;
      }
    }
    this.length -= n;
    return pieces;
  }
}
