#!/usr/bin/env bash
# Rebuild the built-in corpus of `pal codec` (train/ and test/, each with speech, music and drums)
# and its MANIFEST.tsv from installed packages. Writes into OUT_DIR (default: this folder,
# src/pal/codec/data, where pal reads them). README.md says what each file is and why.
#
# Needs (Debian 12 packages, install with apt-get; the versions this corpus was built with):
#   sox libsox-fmt-all (14.4.2+git20190427-3.5)  ffmpeg (7:5.1.9-0+deb12u1)
#   fluidsynth (2.3.1-2)  python3 (3.11, stdlib only)  coreutils (sha256sum)
#   asterisk-core-sounds-en-g722 (1.6.1-1)  -> /usr/share/asterisk/sounds/en_US_f_Allison/*.g722
#   asterisk-core-sounds-es-g722 (1.6.1-1)  -> /usr/share/asterisk/sounds/es_MX_f_Allison/*.g722
#   asterisk-core-sounds-ru-g722 (1.6.1-1)  -> /usr/share/asterisk/sounds/ru_RU_f_IvrvoiceRU/*.g722
#   asterisk-core-sounds-fr-g722 (1.6.1-1)  -> /usr/share/asterisk/sounds/fr_CA_f_June/*.g722
#   asterisk-core-sounds-it-g722 (1.6.1-1)  -> /usr/share/asterisk/sounds/it_IT_m_Carlo/*.g722
#   asterisk-moh-opsound-g722    (2.03-1.1) -> /usr/share/asterisk/moh/*.g722
#   musescore-general-soundfont  (0.2.1-1)  -> /usr/share/sounds/sf3/MuseScore_General_Full.sf3
#   avldrums.lv2-soundfont       (0.5.2-2)  -> /usr/share/sounds/sf2/{Black_Pearl,Red_Zeppelin}_4_LV2.sf2
# and from PyPI the pocketsphinx 5.1.1 source distribution (its test data holds five LibriVox
# recordings). The script fetches it with `pip download` unless POCKETSPHINX_SDIST points at an
# already-downloaded pocketsphinx-5.1.1.tar.gz (sha256 675778b3...d07271355).
#
# Not used, on purpose (they are kept outside the project for independent checks): alsa-utils'
# voices, the Fluid R3 soundfonts (fluid-soundfont-gm/-gs, fluidr3mono), hydrogen-drumkits,
# Wesnoth's music and eSpeak NG. fluidsynth pulls in fluid-soundfont-gm as a recommended package;
# every render below names its soundfont explicitly, so FluidR3_GM.sf2 is never loaded, and the
# MuseScore presets used here (Grand Piano, Strings, Trumpet, the MuseScore Drumline presets) are
# ones whose samples are not Fluid R3's (MuseScore_General_HQ_Sample_Sources.csv); of the marching
# cymbals only the open crash (VCSL) is played, not the Drumline Cymbals that came from Fluid (R3)
# Mono, and of the marching snare not its keys 72-76 (Fluid-style ride and hi-hat samples).
#
# Every step is deterministic: `sox -R` seeds the dither, fluidsynth renders offline with reverb
# and chorus off, ffmpeg's G.722 decoder is exact, and the MIDI files are written by
# midi/write-midi (fixed pseudo-random velocities). Two runs give byte-identical files.
#
# Every output file is mono, 16000 Hz, 16-bit FLAC, ends with the same sox effects as
# src/pal/clips/data/make-clips.sh (10 ms fades, peak-normalised to -1 dBFS, sox's TPDF dither
# seeded by -R), has its leading and trailing silence trimmed, and has no internal pause of a
# second or more.
set -euo pipefail
export LC_ALL=C

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT_DIR="${1:-$HERE}"
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

SOUNDS=/usr/share/asterisk/sounds
MOH=/usr/share/asterisk/moh
MUSESCORE_SF=/usr/share/sounds/sf3/MuseScore_General_Full.sf3
BLACK_PEARL_SF=/usr/share/sounds/sf2/Black_Pearl_4_LV2.sf2
RED_ZEPPELIN_SF=/usr/share/sounds/sf2/Red_Zeppelin_4_LV2.sf2

# the output layout; files of an earlier build are replaced, not merged
for split in train test; do
  for group in speech music drums; do
    mkdir -p "$OUT_DIR/$split/$group"
    rm -f "$OUT_DIR/$split/$group"/*.flac
  done
done
MANIFEST_ROWS="$WORK/manifest-rows.tsv"
: > "$MANIFEST_ROWS"

# The effects every file ends with: trim leading and trailing silence (below -60 dBFS), 10 ms
# linear fades at both ends, peak-normalise to -1 dBFS; written 16-bit mono at 16000 Hz.
# The trims change the length, which the fade-out needs to know, so they run in a first pass
# (to 32-bit float) and the finish in a second.
trim_ends=(silence 1 0.005 -60d reverse silence 1 0.005 -60d reverse)
finish=(fade t 0.01 -0 0.01 gain -n -1)

# emit OUT INPUT... [-- EFFECT...]: INPUT(s) (concatenated), the effects, the trims, the finish
emit() {
  local out=$1 inputs=() effects=()
  shift
  while (($#)) && [[ $1 != -- ]]; do inputs+=("$1"); shift; done
  (($#)) && shift
  effects=("$@")
  sox -V1 -R "${inputs[@]}" -e floating-point -b 32 "$WORK/pre.wav" "${effects[@]}" "${trim_ends[@]}"
  sox -R "$WORK/pre.wav" -b 16 "$out" "${finish[@]}"
}

# record SPLIT GROUP FILE LICENCE CREDIT: one manifest row, after the file is written
record() {
  printf '%s\t%s\t%s/%s/%s\t%s\t%s\n' "$1" "$2" "$1" "$2" "$3" "$4" "$5" >> "$MANIFEST_ROWS"
}

CC_BY_SA="CC BY-SA 3.0, https://creativecommons.org/licenses/by-sa/3.0/"
CC_BY="CC BY 3.0, https://creativecommons.org/licenses/by/3.0/"
CHANGED="excerpted, pauses over 0.5 s shortened to 0.5 s, faded and peak-normalised, by the pal project"

# ================================================================================================
# SPEECH: Asterisk voice prompts (16 kHz G.722) and LibriVox (16 kHz PCM)
# ================================================================================================
# decode_prompt DIR NAME: decode one 16 kHz G.722 prompt to 16-bit PCM WAV, trim its silent ends
# and shorten every pause longer than 0.5 s (below -45 dBFS) to 0.5 s.
decode_prompt() {
  local wav="$WORK/prompt-$1-${2//\//_}.wav"
  ffmpeg -nostdin -loglevel error -y -f g722 -i "$SOUNDS/$1/$2.g722" -ac 1 -ar 16000 \
    -c:a pcm_s16le "$WORK/raw.wav"
  sox "$WORK/raw.wav" "$wav" silence -l 1 0.02 -45d -1 0.5 -45d reverse silence 1 0.02 -45d reverse
  echo "$wav"
}

# prompt_file SPLIT FILE DIR PROMPT MAX_SECONDS LICENCE CREDIT: one prompt, at most MAX_SECONDS long
prompt_file() {
  local split=$1 file=$2 dir=$3 prompt=$4 max=$5 licence=$6 credit=$7 wav
  wav="$(decode_prompt "$dir" "$prompt")"
  if awk -v s="$(soxi -D "$wav")" -v m="$max" 'BEGIN { exit !(s > m) }'; then
    emit "$OUT_DIR/$split/speech/$file" "$wav" -- trim 0 "$max"
  else
    emit "$OUT_DIR/$split/speech/$file" "$wav"
  fi
  record "$split" speech "$file" "$licence" "$credit"
}

ALLISON_EN="asterisk-core-sounds-en-g722 1.6.1-1"
ALLISON_ES="asterisk-core-sounds-es-g722 1.6.1-1"
allison() {  # allison LANGUAGE PACKAGE PROMPT
  echo "Speech: Asterisk voice prompt \"$3\" ($1), recorded by Allison Smith (http://www.theivrvoice.com), \
Copyright (C) 2003-2010 Allison Smith, $CC_BY_SA. From Debian $2; $CHANGED."
}
june() {
  echo "Speech: Asterisk voice prompt \"$1\" (Canadian French), recorded by June Wallack \
(http://www.junewallack.com), translated by Clod Patry, Kristopher Lalletti and June Wallack, \
Copyright (C) 2006-2008 June Wallack, $CC_BY_SA. From Debian asterisk-core-sounds-fr-g722 1.6.1-1; $CHANGED."
}
carlo() {
  echo "Speech: Asterisk voice prompt \"$1\" (Italian), recorded by Carlo Flora (http://www.carloflora.com, \
http://www.segreterietelefoniche.it), translated by Silvia Petrin, Copyright (C) 2012 Carlo Flora, $CC_BY. \
From Debian asterisk-core-sounds-it-g722 1.6.1-1; $CHANGED."
}
ivrvoice_ru() {
  echo "Speech: Asterisk voice prompt \"$1\" (Russian), provided by Maxim Topal (http://www.ivrvoice.ru), \
Copyright (C) 2010 Maxim, $CC_BY. From Debian asterisk-core-sounds-ru-g722 1.6.1-1; $CHANGED."
}

# train: Allison Smith in English and Spanish, the IvrvoiceRU voice in Russian, a LibriVox reader
EN=en_US_f_Allison ES=es_MX_f_Allison RU=ru_RU_f_IvrvoiceRU FR=fr_CA_f_June IT=it_IT_m_Carlo
for prompt in demo-congrats priv-callee-options basic-pbx-ivr-main vm-options; do
  prompt_file train "allison-en-$prompt.flac" $EN $prompt 27 "CC BY-SA 3.0" "$(allison English "$ALLISON_EN" $prompt)"
done
for prompt in demo-echotest dir-intro; do
  prompt_file train "allison-es-$prompt.flac" $ES $prompt 30 "CC BY-SA 3.0" "$(allison Spanish "$ALLISON_ES" $prompt)"
done
prompt_file train "ivrvoice-ru-screen-callee-options.flac" $RU screen-callee-options 27 "CC BY 3.0" \
  "$(ivrvoice_ru screen-callee-options)"

# LibriVox (public domain): the five utterances of Sense and Sensibility, ch. 1, in the
# pocketsphinx 5.1.1 sdist, in two files (0870+0880, 0890+0920+0930), each utterance's silent ends
# trimmed and 0.25 s between utterances.
if [[ -z "${POCKETSPHINX_SDIST:-}" ]]; then
  pip download --quiet --no-deps --no-binary pocketsphinx pocketsphinx==5.1.1 -d "$WORK"
  POCKETSPHINX_SDIST="$WORK/pocketsphinx-5.1.1.tar.gz"
fi
LV=pocketsphinx-5.1.1/test/data/librivox
UTTERANCES=(0870 0880 0890 0920 0930)
MEMBERS=()
for u in "${UTTERANCES[@]}"; do MEMBERS+=("$LV/sense_and_sensibility_01_austen_64kb-$u.wav"); done
tar -xzf "$POCKETSPHINX_SDIST" -C "$WORK" "${MEMBERS[@]}"
for u in "${UTTERANCES[@]}"; do
  sox "$WORK/$LV/sense_and_sensibility_01_austen_64kb-$u.wav" "$WORK/lv-$u.wav" \
    silence 1 0.02 -45d reverse silence 1 0.02 -45d reverse pad 0 0.25
done
LIBRIVOX="Speech: LibriVox recording of Jane Austen, Sense and Sensibility, ch. 1 (public domain), \
from the test data of the pocketsphinx 5.1.1 source distribution (PyPI)"
emit "$OUT_DIR/train/speech/librivox-sense-and-sensibility-1.flac" "$WORK/lv-0870.wav" "$WORK/lv-0880.wav"
record train speech librivox-sense-and-sensibility-1.flac "Public domain" \
  "$LIBRIVOX, utterances 0870 and 0880; trimmed, joined, faded and peak-normalised."
emit "$OUT_DIR/train/speech/librivox-sense-and-sensibility-2.flac" \
  "$WORK/lv-0890.wav" "$WORK/lv-0920.wav" "$WORK/lv-0930.wav"
record train speech librivox-sense-and-sensibility-2.flac "Public domain" \
  "$LIBRIVOX, utterances 0890, 0920 and 0930; trimmed, joined, faded and peak-normalised."

# test: two voices the training set does not have (June Wallack in French, Carlo Flora in Italian),
# and prompts none of the training files speaks in any language
prompt_file test "june-fr-demo-nogo.flac" $FR demo-nogo 8.5 "CC BY-SA 3.0" "$(june demo-nogo)"
prompt_file test "june-fr-confbridge-mute-extended.flac" $FR confbridge-mute-extended 8.5 "CC BY-SA 3.0" \
  "$(june confbridge-mute-extended)"
prompt_file test "carlo-it-demo-moreinfo.flac" $IT demo-moreinfo 8.5 "CC BY 3.0" "$(carlo demo-moreinfo)"
prompt_file test "carlo-it-tt-allbusy.flac" $IT tt-allbusy 8.5 "CC BY 3.0" "$(carlo tt-allbusy)"

# ================================================================================================
# MUSIC: Asterisk music on hold (16 kHz G.722, CC BY-SA 3.0) and MuseScore renders (MIT)
# ================================================================================================
for track in macroform-cold_day macroform-robot_dity macroform-the_simplicity manolo_camp-morning_coffee \
             reno_project-system; do
  ffmpeg -nostdin -loglevel error -y -f g722 -i "$MOH/$track.g722" -ac 1 -ar 16000 -c:a pcm_s16le "$WORK/$track.wav"
done
MOH_PKG="Debian asterisk-moh-opsound-g722 2.03-1.1"
moh_credit() {  # moh_credit TRACK START SECONDS
  local title artist
  case $1 in
    macroform-cold_day) title="Cold Day"; artist="Paul Shuler (Macroform), Copyright (C) 2009, http://macroform.bandcamp.com/";;
    macroform-robot_dity) title="Robot Dity"; artist="Paul Shuler (Macroform), Copyright (C) 2009, http://macroform.bandcamp.com/";;
    macroform-the_simplicity) title="The Simplicity"; artist="Paul Shuler (Macroform), Copyright (C) 2009, http://macroform.bandcamp.com/";;
    manolo_camp-morning_coffee) title="Morning Coffee"; artist="Manolo Camp, Copyright (C) 2009, http://ccmixter.org/people/ManoloCamp";;
    reno_project-system) title="System"; artist="Reno Project, Copyright (C) 2008, http://www.jamendo.com/en/album/23661";;
  esac
  echo "Music: \"$title\" by $artist, $CC_BY_SA. From $MOH_PKG ($1.g722); excerpt $2-$(awk -v a="$2" -v b="$3" 'BEGIN { print a + b }') s, \
decoded from G.722, faded and peak-normalised by the pal project."
}
# moh_file SPLIT TRACK START SECONDS: one excerpt, named after the track and its start
moh_file() {
  local file="$2-$3s.flac"
  emit "$OUT_DIR/$1/music/$file" "$WORK/$2.wav" -- trim "$3" "$4"
  record "$1" music "$file" "CC BY-SA 3.0" "$(moh_credit "$2" "$3" "$4")"
}
# train: two Macroform tracks and Manolo Camp's (away from 30-32 s, the built-in hiphop clip's beat)
for start in 20 75 140 195; do moh_file train macroform-cold_day $start 14.3; done
for start in 5 60 120; do moh_file train macroform-robot_dity $start 14.3; done
for start in 2 45; do moh_file train manolo_camp-morning_coffee $start 14.3; done
# test: two tracks the training set never plays (Reno Project's away from 106.2-108.2 s, the
# built-in band clip)
for start in 40 220; do moh_file test reno_project-system $start 7; done
moh_file test macroform-the_simplicity 150 7

# MuseScore_General_HQ renders of MIDI files written for this project
python3 "$HERE/midi/write-midi" "$WORK" > "$WORK/last-note.tsv"  # each file's last note-on, in seconds
render() {  # render SOUNDFONT NAME: NAME.mid -> NAME.wav (44.1 kHz float, stereo)
  fluidsynth -ni -q -R 0 -C 0 -g 1.0 -r 44100 -o audio.file.format=float -T wav \
    -F "$WORK/$2.wav" "$1" "$WORK/$2.mid" 2>&1 | { grep -v 'No preset found on channel 9' || true; } >&2
}
# to_corpus WAV SPLIT GROUP FILE [EFFECT...]: mono, 16000 Hz, silent ends trimmed, finished
to_corpus() {
  local wav=$1 split=$2 group=$3 file=$4
  shift 4
  emit "$OUT_DIR/$split/$group/$file" "$wav" -- channels 1 rate -v 16000 "$@"
}
# drum_end NAME...: a drum render keeps 1 s after its last note-on (a crash would ring for seconds)
drum_end() {
  local name
  for name in "$@"; do awk -F'\t' -v n="$name" '$1 == n { print $2 }' "$WORK/last-note.tsv"; done |
    sort -g | tail -1 | awk '{ printf "%.4f", $1 + 1.0 }'
}
MUSESCORE="MuseScore_General_HQ SoundFont v0.2.1 (Debian musescore-general-soundfont 0.2.1-1), adaptation \
Copyright (C) 2018-2021 S. Christian Collins, MIT licence"
render "$MUSESCORE_SF" fur-elise
to_corpus "$WORK/fur-elise.wav" train music musescore-piano-fur-elise.flac
record train music musescore-piano-fur-elise.flac "MIT" "Music: Beethoven, Für Elise, WoO 59, bars 1-8 with \
the repeat (public domain), MIDI written for the pal project, rendered with fluidsynth on the 'Grand Piano' \
preset (Splendid Grand samples, public domain) of the $MUSESCORE."
render "$MUSESCORE_SF" amazing-grace
to_corpus "$WORK/amazing-grace.wav" train music musescore-strings-amazing-grace.flac
record train music musescore-strings-amazing-grace.flac "MIT" "Music: \"Amazing Grace\" (the tune New Britain, \
1829, public domain), arranged for string ensemble for the pal project, rendered with fluidsynth on the \
'Strings Fast' and 'Strings Slow' presets (VSCO 2 Community Edition samples, CC0) of the $MUSESCORE."
render "$MUSESCORE_SF" ode-to-joy
to_corpus "$WORK/ode-to-joy.wav" test music musescore-trumpet-ode-to-joy.flac
record test music musescore-trumpet-ode-to-joy.flac "MIT" "Music: Beethoven, Symphony no. 9, \"Ode to Joy\" \
theme (public domain), arranged for trumpet and strings for the pal project, rendered with fluidsynth on the \
'Trumpet' (public-domain samples) and 'Strings Slow' (VSCO 2 Community Edition samples, CC0) presets of the \
$MUSESCORE."

# ================================================================================================
# DRUMS: AVL Drumkits (CC BY-SA 3.0) and MuseScore Drumline marching percussion (MIT)
# ================================================================================================
avl_credit() {  # avl_credit KIT PATTERN
  echo "Drums: AVL Drumkits '$1' by Glen MacArthur (2015), $CC_BY_SA. From Debian avldrums.lv2-soundfont \
0.5.2-2; played from a MIDI pattern ($2) written for the pal project, rendered with fluidsynth, mixed to \
mono, resampled to 16 kHz, faded and peak-normalised."
}
# train: six patterns on the Black Pearl kit
for pattern in rock funk shuffle toms swing disco; do
  render "$BLACK_PEARL_SF" kit-$pattern
  to_corpus "$WORK/kit-$pattern.wav" train drums avl-black-pearl-$pattern.flac trim 0 "$(drum_end kit-$pattern)"
  record train drums avl-black-pearl-$pattern.flac "CC BY-SA 3.0" "$(avl_credit "Black Pearl 4pc" $pattern)"
done
# test: three other patterns on the other kit, Red Zeppelin
for pattern in halftime syncopated ridefill; do
  render "$RED_ZEPPELIN_SF" kit-$pattern
  to_corpus "$WORK/kit-$pattern.wav" test drums avl-red-zeppelin-$pattern.flac trim 0 "$(drum_end kit-$pattern)"
  record test drums avl-red-zeppelin-$pattern.flac "CC BY-SA 3.0" "$(avl_credit "Red Zeppelin 4pc" $pattern)"
done

# Marching cadences: each part rendered alone (channel 10, its MuseScore Drumline preset), then
# mixed with sox (levels chosen so that no part drowns the others); a one-part cadence is only
# converted.
MARCHING="MuseScore Drumline samples by S. Christian Collins and Amir Oosman in the $MUSESCORE"
march() {  # march SPLIT FILE NAME PART:LEVEL...
  local split=$1 file=$2 name=$3 inputs=() names=() part
  shift 3
  for part in "$@"; do
    render "$MUSESCORE_SF" "march-$name-${part%%:*}"
    inputs+=(-v "${part##*:}" "$WORK/march-$name-${part%%:*}.wav")
    names+=("march-$name-${part%%:*}")
  done
  if ((${#names[@]} > 1)); then
    sox -V1 -m "${inputs[@]}" -e floating-point -b 32 "$WORK/march-$name.wav"
  else
    sox -V1 "${inputs[@]}" -e floating-point -b 32 "$WORK/march-$name.wav"
  fi
  to_corpus "$WORK/march-$name.wav" "$split" drums "$file" trim 0 "$(drum_end "${names[@]}")"
}
march train musescore-marching-cadence-a.flac a snare:1.0 bass:0.5 cymbals:0.7
record train drums musescore-marching-cadence-a.flac "MIT" "Drums: a marching cadence in 4/4 (snare, five \
bass drums, cymbals) written for the pal project, rendered with fluidsynth on the 'Marching Snare', 'Marching \
Bass' and 'Marching Cymbals' presets ($MARCHING; the open crash of the cymbals from the Versilian Community Sample Library, CC0, by Sam Gossner)."
march train musescore-marching-cadence-b.flac b snare:1.0 bass:0.45 cymbals:1.0
record train drums musescore-marching-cadence-b.flac "MIT" "Drums: a marching cadence in 12/8 (snare, five \
bass drums, cymbals) written for the pal project, rendered with fluidsynth on the 'Marching Snare', 'Marching \
Bass' and 'Marching Cymbals' presets ($MARCHING; the open crash of the cymbals from the Versilian Community Sample Library, CC0, by Sam Gossner)."
march test musescore-marching-tenors.flac c tenor:1.0
record test drums musescore-marching-tenors.flac "MIT" "Drums: a marching cadence for tenor drums (quads with \
spocks), written for the pal project, rendered with fluidsynth on the 'Marching Tenor' preset ($MARCHING)."

# ================================================================================================
# MANIFEST.tsv: one row per file, with its length in seconds and the SHA-256 of its bytes
# ================================================================================================
{
  printf 'split\tgroup\tpath\tseconds\tsha256\tlicence\tcredit\n'
  while IFS=$'\t' read -r split group path licence credit; do
    seconds=$(soxi -s "$OUT_DIR/$path" | awk '{printf "%.4f", $1 / 16000}')
    sha=$(sha256sum "$OUT_DIR/$path" | cut -d' ' -f1)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$split" "$group" "$path" "$seconds" "$sha" "$licence" "$credit"
  done < <(sort -t$'\t' -k1,1r -k2,2 -k3,3 "$MANIFEST_ROWS")
} > "$OUT_DIR/MANIFEST.tsv"

awk -F'\t' 'NR > 1 { s[$1 "\t" $2] += $4; n[$1 "\t" $2]++ }
  END { for (k in s) printf "%s\t%d files\t%.1f s\n", k, n[k], s[k] }' "$OUT_DIR/MANIFEST.tsv" | sort -r
du -sb "$OUT_DIR/train" "$OUT_DIR/test"
