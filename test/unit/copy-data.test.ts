import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CopyDataFrames, type CopyDataPiece } from '../../src/parts/copy-data';

/** One protocol message: code byte, Int32 length (itself included), body. */
const message = (code: string, body: string | Buffer = ''): Buffer => {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  const head = Buffer.alloc(5);
  head[0] = code.charCodeAt(0);
  head.writeUInt32BE(b.length + 4, 1);
  return Buffer.concat([head, b]);
};

const rows = ['1\tada\n', '2\t\\N\n', '3\tgrace hopper\n', `4\t${'x'.repeat(300)}\n`];
const copyOut = Buffer.concat([
  message('H', Buffer.from([0, 0, 1, 0, 0])),
  message('d', rows[0]),
  message('N', 'SNOTICE\0'),
  message('d', rows[1]),
  message('S', 'TimeZone\0UTC\0'),
  message('d', rows[2]),
  message('d', rows[3]),
  message('c'),
]);
const after = Buffer.concat([message('C', 'COPY 4\0'), message('Z', 'I')]);

/** Feeds copies of `stream` cut at `cuts`; returns the COPY text and how it ended. */
function feed(stream: Buffer, cuts: number[]): { text: string; end?: CopyDataPiece['end']; rest: Buffer } {
  const frames = new CopyDataFrames();
  const bounds = [0, ...cuts, stream.length];
  let text = '';
  for (let i = 0; i + 1 < bounds.length; i++) {
    const piece = frames.feed(Buffer.from(stream.subarray(bounds[i], bounds[i + 1])));
    text += piece.data.toString();
    if (piece.end) return { text, end: piece.end, rest: Buffer.concat([piece.rest!, stream.subarray(bounds[i + 1])]) };
  }
  return { text, rest: Buffer.alloc(0) };
}

describe('COPY … TO STDOUT frames, squeezed out in place', () => {
  const stream = Buffer.concat([copyOut, after]);

  it('gives the rows and what follows CopyDone, wherever the socket cuts the stream (once and twice)', () => {
    for (let a = 1; a < stream.length; a++) {
      for (const cuts of [[a], a + 7 < stream.length ? [a, a + 7] : [a]]) {
        const { text, end, rest } = feed(stream, cuts);
        assert.equal(text, rows.join(''), `cut at ${cuts}`);
        assert.equal(end, 'done');
        assert.deepEqual(rest, after, `cut at ${cuts}`);
      }
    }
  });

  it('stops before an ErrorResponse and hands it back whole, with the rows before it', () => {
    const failing = Buffer.concat([copyOut.subarray(0, copyOut.length - 5 - message('d', rows[3]).length), message('E', 'SERROR\0Mboom\0\0'), message('Z', 'I')]);
    const errorAt = failing.indexOf(message('E', 'SERROR\0Mboom\0\0'));
    for (let a = 1; a < failing.length; a++) {
      const { text, end, rest } = feed(failing, [a]);
      assert.equal(end, 'error', `cut at ${a}`);
      assert.equal(text, rows.slice(0, 3).join(''), `cut at ${a}`);
      assert.deepEqual(rest, failing.subarray(errorAt), `cut at ${a}`);
    }
  });

  it('gives nothing more until the frames are complete', () => {
    const frames = new CopyDataFrames();
    const d = message('d', 'abc\n');
    assert.deepEqual(frames.feed(Buffer.from(d.subarray(0, 3))), { data: Buffer.alloc(0) });
    assert.equal(frames.feed(Buffer.from(d.subarray(3, 6))).data.toString(), 'a');
    assert.equal(frames.feed(Buffer.from(d.subarray(6))).data.toString(), 'bc\n');
  });
});
