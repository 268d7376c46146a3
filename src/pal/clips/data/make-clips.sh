#!/usr/bin/env bash
# Rebuild the five recorded built-in clips from installed packages. Writes into OUT_DIR (default:
# this folder, src/pal/clips/data, where pal reads them).
#
# Needs (Debian 12 packages, install with apt-get):
#   sox libsox-fmt-all ffmpeg fluidsynth python3
#   musescore-general-soundfont   (0.2.1-1)   -> /usr/share/sounds/sf3/MuseScore_General_Full.sf3
#   avldrums.lv2-soundfont        (0.5.2-2)   -> /usr/share/sounds/sf2/Black_Pearl_4_LV2.sf2
#   asterisk-moh-opsound-g722     (2.03-1.1)  -> /usr/share/asterisk/moh/*.g722
# and from PyPI the pocketsphinx 5.1.1 source distribution (its test data holds the LibriVox
# recordings). The script fetches it with `pip download` unless POCKETSPHINX_SDIST points at
# an already-downloaded pocketsphinx-5.1.1.tar.gz.
#
# Every step is deterministic: `sox -R` seeds the dither, fluidsynth renders offline with reverb
# and chorus off, ffmpeg's G.722 decoder is exact.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT_DIR="${1:-$HERE}"
mkdir -p "$OUT_DIR"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

MUSESCORE_SF=/usr/share/sounds/sf3/MuseScore_General_Full.sf3
AVL_SF=/usr/share/sounds/sf2/Black_Pearl_4_LV2.sf2
MOH=/usr/share/asterisk/moh

# --- sources from the pocketsphinx sdist (LibriVox, public domain) --------------------------------
if [[ -z "${POCKETSPHINX_SDIST:-}" ]]; then
  pip download --quiet --no-deps --no-binary pocketsphinx pocketsphinx==5.1.1 -d "$WORK"
  POCKETSPHINX_SDIST="$WORK/pocketsphinx-5.1.1.tar.gz"
fi
LV=pocketsphinx-5.1.1/test/data/librivox
tar -xzf "$POCKETSPHINX_SDIST" -C "$WORK" \
  "$LV/sense_and_sensibility_01_austen_64kb-0870.wav" \
  "$LV/sense_and_sensibility_01_austen_64kb-0890.wav"
LV="$WORK/$LV"

# sox effects shared by every clip: 10 ms fades at both ends, peak-normalise to -1 dBFS,
# write 16-bit mono FLAC (with sox's default TPDF dither, seeded by -R).
finish=(fade t 0.01 -0 0.01 gain -n -1)

# 1. speech-selfish.flac --------------------------------------------------------------------------
# "... and rather selfish, is to be ..." (LibriVox, Sense and Sensibility ch. 1), 16 kHz native.
# 2 s from 2.2285 s (sample 35656 of 16 kHz), so the middle 0.743 s (2.857-3.600 s in the source)
# is "(s)elfish", ending on the /sh/ (3.34-3.59 s) just before the pause.
sox -R "$LV/sense_and_sensibility_01_austen_64kb-0890.wav" -b 16 -c 1 "$OUT_DIR/speech-selfish.flac" \
  trim 35656s 32000s "${finish[@]}"

# 2. piano-bach-prelude.flac ----------------------------------------------------------------------
python3 "$HERE/midi/write-midi" "$WORK"
fluidsynth -ni -q -R 0 -C 0 -g 1.0 -r 44100 -o audio.file.format=float -T wav \
  -F "$WORK/bach.wav" "$MUSESCORE_SF" "$WORK/bach-prelude-bwv846.mid"
# 2 s from 2.35 s: the middle window (2.979-3.721 s) spans the bar line into bar 2 (C5, E5 of
# bar 1, then the new bass C4 and D4 of bar 2).
sox -R "$WORK/bach.wav" -b 16 "$OUT_DIR/piano-bach-prelude.flac" \
  channels 1 trim 2.35 2.0 rate -v 22050 "${finish[@]}"

# 3. rock-song-instrumental.flac -------------------------------------------------------------------
# Reno Project, "System": full band with lead guitar. The G.722 file is the 16 kHz version of
# the track (the .wav one in asterisk-moh-opsound-wav is 8 kHz); ffmpeg decodes it.
ffmpeg -nostdin -loglevel error -f g722 -i "$MOH/reno_project-system.g722" -ac 1 -ar 16000 \
  -c:a pcm_s16le "$WORK/reno.wav"
sox -R "$WORK/reno.wav" -b 16 "$OUT_DIR/rock-song-instrumental.flac" \
  trim 106.2 2.0 "${finish[@]}"

# 4. beat-with-voice.flac -------------------------------------------------------------------------
# Manolo Camp, "Morning Coffee" (a hip-hop-style instrumental beat, 30.0-32.0 s) mixed with
# LibriVox speech "much there might be prudently in his power" (0870, 4.0-6.0 s); the beat is
# turned down 14 dB (x0.2) so the voice sits about 1 dB above it (RMS), as a rap vocal would.
ffmpeg -nostdin -loglevel error -f g722 -i "$MOH/manolo_camp-morning_coffee.g722" -ac 1 -ar 16000 \
  -c:a pcm_s16le "$WORK/manolo.wav"
sox -R "$WORK/manolo.wav" "$WORK/beat.wav" trim 30.0 2.0
sox -R "$LV/sense_and_sensibility_01_austen_64kb-0870.wav" "$WORK/voice.wav" trim 4.0 2.0
sox -R -m -v 0.2 "$WORK/beat.wav" -v 1.0 "$WORK/voice.wav" -b 16 "$OUT_DIR/beat-with-voice.flac" \
  "${finish[@]}"

# 5. drum-kit-beat.flac ---------------------------------------------------------------------------
fluidsynth -ni -q -R 0 -C 0 -g 1.0 -r 44100 -o audio.file.format=float -T wav \
  -F "$WORK/drums.wav" "$AVL_SF" "$WORK/drum-beat.mid"
# 2 s from 2.2015 s: crash+kick on the downbeat of bar 2 (2.4 s) near the start; the middle window
# (2.830-3.573 s) holds the kick on step 3 (2.85 s), the snare backbeat (3.0 s), the ghost snare
# (3.45 s) and a sixteenth-note hi-hat throughout; the file runs on to the next kick (3.6 s).
sox -R "$WORK/drums.wav" -b 16 "$OUT_DIR/drum-kit-beat.flac" \
  channels 1 trim 2.2015 2.0 rate -v 22050 "${finish[@]}"

ls -l "$OUT_DIR"/{speech-selfish,piano-bach-prelude,rock-song-instrumental,beat-with-voice,drum-kit-beat}.flac
