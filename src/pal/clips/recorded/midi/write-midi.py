"""Write the two small MIDI files the rendered clips are made from (Python stdlib only).

usage: python3 write-midi.py [OUTPUT_DIR]

- bach-prelude-bwv846.mid: J. S. Bach, Prelude in C major BWV 846 (The Well-Tempered Clavier,
  book I), bars 1-4, at 72 quarter notes a minute. The composition is in the public domain; this
  encoding of it was written for this project.
- drum-beat.mid: three bars of a funk/hip-hop drum beat at 100 quarter notes a minute, written for
  this project.

Both are format-0-style single-track files (one MTrk) at 480 ticks per quarter note, on MIDI
channel 1 (the AVL drum soundfonts keep their kit at bank 0, preset 0, so the drums are on an
ordinary channel, not channel 10).
"""

import os
import struct
import sys

TPQ = 480  # ticks per quarter note


def vlq(n):
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.insert(0, (n & 0x7F) | 0x80)
        n >>= 7
    return bytes(out)


def track(events, bpm):
    """events: (tick, 'on'|'off', channel, note, velocity)."""
    data = bytearray()
    data += vlq(0) + b"\xff\x51\x03" + struct.pack(">I", round(60_000_000 / bpm))[1:]
    last = 0
    # at equal ticks, note-offs go before note-ons
    for tick, kind, ch, note, vel in sorted(events, key=lambda e: (e[0], e[1] == "on", e[3])):
        data += vlq(tick - last)
        last = tick
        data += bytes([(0x90 if kind == "on" else 0x80) | ch, note, vel if kind == "on" else 0])
    data += vlq(TPQ) + b"\xff\x2f\x00"
    return b"MTrk" + struct.pack(">I", len(data)) + bytes(data)


def write(path, events, bpm):
    with open(path, "wb") as fh:
        fh.write(b"MThd" + struct.pack(">IHHH", 6, 0, 1, TPQ))
        fh.write(track(events, bpm))


def note(events, start, length, pitch, vel, ch=0):
    events += [(start, "on", ch, pitch, vel), (start + length, "off", ch, pitch, 0)]


out_dir = sys.argv[1] if len(sys.argv) > 1 else "."

# --- Bach, Prelude in C major BWV 846, bars 1-4 ---------------------------------------------------
# Each bar is one half-bar figure played twice: the left hand holds the two lowest notes (the first
# a half note, the second entering a sixteenth later), the right hand plays the upper three notes
# as sixteenths, twice over.
S = TPQ // 4  # a sixteenth
BARS = [
    (60, 64, 67, 72, 76),  # bar 1: C4 E4 G4 C5 E5  (C major)
    (60, 62, 69, 74, 77),  # bar 2: C4 D4 A4 D5 F5  (D minor 7 over C)
    (59, 62, 67, 74, 77),  # bar 3: B3 D4 G4 D5 F5  (G7 over B)
    (60, 64, 67, 72, 76),  # bar 4: C4 E4 G4 C5 E5  (C major)
]
piano = []
for b, (p1, p2, p3, p4, p5) in enumerate(BARS):
    for half in range(2):
        t = (b * 16 + half * 8) * S
        note(piano, t, 8 * S, p1, 70)
        note(piano, t + S, 7 * S, p2, 66)
        for k, p in enumerate((p3, p4, p5, p3, p4, p5)):
            note(piano, t + (2 + k) * S, S, p, 74 if k % 3 == 0 else 64)
write(os.path.join(out_dir, "bach-prelude-bwv846.mid"), piano, bpm=72)

# --- a funk/hip-hop drum beat, three bars ---------------------------------------------------------
# sixteenth-note closed hi-hat (accented on the eighths, open on the last eighth of the bar), kick on
# steps 0, 3, 8 and 10 of 16, snare backbeat on steps 4 and 12 with ghost notes on 7, 9 and 15,
# and one crash on the downbeat of bar 2. General MIDI drum numbers, which the AVL kits follow:
# 36 kick, 38 snare, 42 closed hi-hat, 46 open hi-hat, 49 crash.
S16 = TPQ // 4  # a sixteenth
drums = []
for bar in range(3):
    t0 = bar * 16 * S16
    for i in range(16):
        if i == 14:
            note(drums, t0 + i * S16, 2 * S16, 46, 80)
        elif i != 15:
            note(drums, t0 + i * S16, S16, 42, 92 if i % 2 == 0 else 52)
    for i in (0, 3, 8, 10):
        note(drums, t0 + i * S16, S16, 36, 112 if i in (0, 8) else 96)
    for i in (4, 12):
        note(drums, t0 + i * S16, S16, 38, 118)
    for i in (7, 9, 15):
        note(drums, t0 + i * S16, S16, 38, 38)
note(drums, 16 * S16, 4 * S16, 49, 100)
write(os.path.join(out_dir, "drum-beat.mid"), drums, bpm=100)
