"""Unit tests for privvid.io on generated fixtures."""

from __future__ import annotations

import shutil
from pathlib import Path
import subprocess

import av
import cv2
import numpy as np
import pytest

from fakes import moving_square_frames, write_slow_then_fast, write_video
from privvid.config import AnonymizeConfig
from privvid.errors import BadInput, ConfigError
from privvid.io import VideoWriter, discover, output_size, probe, read_frames
from privvid.io.masks import MaskWriter


def test_discover_layouts(tmp_path):
    frames = moving_square_frames(3)
    write_video(tmp_path / "single.mp4", frames)
    assert [c.relpath for c in discover(tmp_path / "single.mp4").clips] == ["single"]

    tree = tmp_path / "tree"
    write_video(tree / "jumping" / "a.mp4", frames)
    write_video(tree / "jumping" / "a.avi", frames, codec="mpeg4")
    write_video(tree / "running" / "b c é.mkv", frames)
    (tree / "running" / "notes.txt").write_text("not a video")
    frame_dir = tree / "dancing" / "clip1"
    frame_dir.mkdir(parents=True)
    for i, f in enumerate(frames):
        cv2.imwrite(str(frame_dir / f"{i:05d}.jpg"), f)
    found = discover(tree)
    rels = [c.relpath for c in found.clips]
    # colliding stems keep their extension; unicode and spaces survive; frame folders are clips
    assert rels == ["dancing/clip1", "jumping/a.avi", "jumping/a.mp4", "running/b c é"]
    assert [c.label for c in found.clips] == ["dancing", "jumping", "jumping", "running"]
    assert [p.name for p in found.ignored] == ["notes.txt"]
    # and each name that differs from its input's stem is reported
    assert sorted(found.renamed) == [("jumping/a.avi", "jumping/a.avi"), ("jumping/a.mp4", "jumping/a.mp4")]
    # a frame folder given directly is one clip
    assert [c.relpath for c in discover(frame_dir).clips] == ["clip1"]


@pytest.mark.parametrize(
    "content, message",
    [(b"", "empty file"), (b"this is plain text, not a video\n" * 20, "not a video"),],
)
def test_probe_rejects_non_videos(tmp_path, content, message):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    with pytest.raises(BadInput, match=message):
        probe(bad)


def test_truncated_video_is_bad_input(tmp_path):
    good = write_video(tmp_path / "good.mp4", moving_square_frames(40))
    data = good.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(BadInput):
        info = probe(cut)
        list(read_frames(cut, info=info))


def test_read_resize_grayscale_and_resample(tmp_path):
    frames = [cv2.cvtColor(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB) for f in moving_square_frames(24)]
    path = tmp_path / "gray.mp4"
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=24)
    stream.width, stream.height, stream.pix_fmt = 96, 64, "gray"
    for f in frames:
        for p in stream.encode(av.VideoFrame.from_ndarray(f[..., 0], format="gray")):
            container.mux(p)
    for p in stream.encode():
        container.mux(p)
    container.close()
    out = list(read_frames(path, size=(48, 32)))
    assert len(out) == 24 and out[0].shape == (32, 48, 3) and out[0].dtype == np.uint8
    # 24 fps -> 12 fps keeps every other frame
    assert len(list(read_frames(path, fps=12))) == 12
    assert len(list(read_frames(path, fps=48))) == 48


def test_output_size_is_even_and_bounded(tmp_path):
    odd = write_video(tmp_path / "odd.mp4", [f[:63, :95] for f in moving_square_frames(3)], codec="mpeg4")
    info = probe(odd)
    assert (info.width, info.height) == (95, 63)
    assert output_size(info, None) == (94, 62)
    assert output_size(info, (433, 241)) == (432, 240)
    # a -2 side that would go past the largest side privvid writes is this clip's failure, said in one line
    with pytest.raises(BadInput, match=r"gives 4524x3000 for this 95x63 clip, over the largest side"):
        output_size(info, (-2, 3000))
    # a side given over it is a setting error before any clip
    with pytest.raises(ConfigError, match="at most 3840 px, got 20000x240"):
        AnonymizeConfig(resize=(20000, 240))


def test_writer_is_atomic_and_strips_audio_and_metadata(tmp_path):
    src = write_video(tmp_path / "src.mp4", moving_square_frames(10), audio=True,
                      metadata={"title": "secret name", "location": "+48.85+002.35/"})
    assert probe(src).has_audio
    # what else the input holds is named (tag names only, no values), so the notes say what was not kept
    assert probe(src).dropped in (("tags location, title",), ("tags location, location-eng, title",))
    dst = tmp_path / "out" / "clip.mp4"
    writer = VideoWriter(dst, 96, 64, 24)
    for frame in read_frames(src):
        writer.write(frame)
    assert not dst.exists(), "nothing may appear under the final name before commit"
    writer.commit()
    with av.open(str(dst)) as container:
        assert not container.streams.audio
        assert container.streams.video[0].codec_context.name == "h264"
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p"
        assert "title" not in container.metadata and "location" not in container.metadata
        assert not any("Lav" in v for v in container.metadata.values())
        assert sum(1 for _ in container.decode(video=0)) == 10
    assert not list(dst.parent.glob(".*partial*"))


def test_subtitles_chapters_and_further_streams_are_named_among_what_is_not_kept():
    from types import SimpleNamespace

    from privvid.io.video import _other_contents

    streams = SimpleNamespace(video=[1, 2], subtitles=[1], data=[], attachments=[1, 2, 3])
    container = SimpleNamespace(streams=streams, chapters=lambda: [{}, {}],
                                metadata={"encoder": "Lavf", "ARTIST": "Jane Doe", "major_brand": "isom"})
    assert _other_contents(container) == ("1 further video stream", "1 subtitle stream", "3 attachments",
                                          "2 chapters", "tags artist")
    plain = SimpleNamespace(streams=SimpleNamespace(video=[1], subtitles=[], data=[]), chapters=lambda: [],
                            metadata={"encoder": "Lavf", "software": "x"})
    assert _other_contents(plain) == ()


def test_writer_abort_leaves_nothing(tmp_path):
    dst = tmp_path / "clip.mp4"
    writer = VideoWriter(dst, 96, 64, 24)
    writer.write(moving_square_frames(1)[0])
    writer.abort()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError):
        VideoWriter(tmp_path / "odd.mp4", 95, 64, 24)


def test_mask_writer_roundtrip(tmp_path, rng):
    masks = rng.random((7, 13, 21)) > 0.5
    writer = MaskWriter(tmp_path / "m.masks.npz", 13, 21)
    for m in masks:
        writer.write(m)
    path = writer.commit()
    loaded = np.load(path)["masks"]
    assert loaded.dtype == bool and loaded.shape == masks.shape
    assert np.array_equal(loaded, masks)
    assert [p.name for p in tmp_path.iterdir()] == ["m.masks.npz"]


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg command (apt-get install ffmpeg)")
def test_rotation_metadata_is_applied(tmp_path):
    src = write_video(tmp_path / "src.mp4", moving_square_frames(4), codec="mpeg4")
    rotated = tmp_path / "rotated.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(src), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(rotated)],
                   check=True)
    info = probe(rotated)
    assert info.rotation in (90, 270)
    assert info.display_size == (64, 96)
    first = next(read_frames(rotated))
    assert first.shape == (96, 64, 3)
    # reference: ffmpeg's own auto-rotation (what players show) must match what privvid reads
    upright = tmp_path / "upright.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(rotated), "-c:v", "libx264", "-pix_fmt", "yuv444p",
                    "-crf", "0", str(upright)], check=True)
    with av.open(str(upright)) as container:
        reference = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert reference.shape == first.shape
    error = np.abs(first.astype(int) - reference.astype(int)).mean()
    wrong_way = np.abs(np.rot90(first, 2).astype(int) - reference.astype(int)).mean()
    assert error < 8 and error < wrong_way / 4
    # and it is a real quarter turn, not the unrotated picture
    assert first.shape[:2] != next(read_frames(src)).shape[:2]


def test_writer_key_frame_interval(tmp_path):
    writer = VideoWriter(tmp_path / "gop.mp4", 96, 64, 24, gop=8)
    for frame in moving_square_frames(40):
        writer.write(frame)
    writer.commit()
    with av.open(str(tmp_path / "gop.mp4")) as container:
        keys = [i for i, packet in enumerate(container.demux(video=0)) if packet.is_keyframe]
    assert keys[0] == 0 and len(keys) >= 5
    assert max(b - a for a, b in zip(keys, keys[1:])) <= 8


def _textured_clip(n: int = 40, width: int = 432, height: int = 240) -> list[np.ndarray]:
    """A smoothed random texture panning across the frame, with a bright block crossing it."""
    rng = np.random.default_rng(3)
    texture = cv2.GaussianBlur(rng.integers(0, 256, (height + 64, width + 256, 3), dtype=np.uint8), (5, 5), 1.5)
    frames = []
    for i in range(n):
        frame = np.ascontiguousarray(texture[(i // 2) % 64:(i // 2) % 64 + height, 4 * i:4 * i + width])
        frame[60:140, 10 + 8 * i:90 + 8 * i] = (240, 200, 40)
        noise = rng.integers(-6, 7, frame.shape)
        frames.append(np.clip(frame.astype(int) + noise, 0, 255).astype(np.uint8))
    return frames


def test_writer_output_depends_on_the_frames_alone(tmp_path):
    """The same frames give the same file, whatever the process's memory held before each write
    (x264's macroblock-tree pass gave different streams here, so it is off)."""
    frames = _textured_clip()
    rng = np.random.default_rng(0)
    digests = set()
    for run in range(3):
        path = tmp_path / f"run{run}.mp4"
        with VideoWriter(path, 432, 240, 25) as writer:
            for frame in frames:
                # churn the heap between writes, as a detector working between frames does
                for _ in range(int(rng.integers(1, 4))):
                    cv2.GaussianBlur(rng.random((300, 300), dtype=np.float32), (31, 31), 5)
                junk = [np.empty(int(rng.integers(1_000, 400_000)), np.uint8) for _ in range(6)]
                for block in junk:
                    block.fill(int(rng.integers(0, 256)))
                del junk
                writer.write(frame)
        digests.add(path.read_bytes())
    assert len(digests) == 1


def test_codec_threads_follow_the_process_setting(tmp_path, monkeypatch):
    """Decoders take the process setting (one thread in a worker of a parallel run); the encoder always
    runs on one thread, so the same frames give the same file with any --workers and on any machine."""
    from privvid.io import video

    opened = []
    real_open = video.av.open

    def spy(*args, **kwargs):
        container = real_open(*args, **kwargs)
        opened.append(container)
        return container

    frames = moving_square_frames(6)
    h, w = frames[0].shape[:2]
    digests = []
    try:
        for threads in (1, 0):
            video.set_codec_threads(threads)
            writer = VideoWriter(tmp_path / f"t{threads}.mp4", w, h, 24)
            assert writer._stream.codec_context.thread_count == 1
            for frame in frames:
                writer.write(frame)
            writer.commit()
            digests.append((tmp_path / f"t{threads}.mp4").read_bytes())
            monkeypatch.setattr(video.av, "open", spy)
            reader = read_frames(tmp_path / f"t{threads}.mp4")
            next(reader)   # the decoder is open now
            context = opened[-1].streams.video[0].codec_context
            if threads == 1:
                assert context.thread_count == 1        # FFmpeg's default is 0 (its own choice)
            else:
                assert context.thread_type == av.codec.context.ThreadType.AUTO   # the default is SLICE
            assert 1 + sum(1 for _ in reader) == 6
            monkeypatch.setattr(video.av, "open", real_open)
    finally:
        video.set_codec_threads(0)
    assert digests[0] == digests[1]


def test_frames_numbered_without_zero_padding_are_read_in_number_order(tmp_path):
    from privvid.engine.data import _decode_frame_folder

    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(1, 13):                                   # 1.png ... 12.png: "10" sorts before "2" as text
        cv2.imwrite(str(folder / f"{i}.png"), np.full((16, 16, 3), i * 20, np.uint8))
    values = [int(f[0, 0, 0]) for f in read_frames(folder)]
    assert values == [i * 20 for i in range(1, 13)]
    clip = _decode_frame_folder(folder, 12, 1, 16, None)      # the engine's rawframe reader: the same order
    assert [int(v) for v in clip[:, 0, 0, 0]] == [i * 20 for i in range(1, 13)]


def test_frame_names_sort_the_same_whatever_the_listing_order_and_odd_digits_are_text(tmp_path):
    from privvid.io.video import list_frame_files

    for order in (("01.png", "1.png", "²1.png", "2.png"), ("2.png", "²1.png", "1.png", "01.png")):
        folder = tmp_path / "-".join(order).replace(".png", "")
        folder.mkdir()
        for name in order:                                   # created in another order each time
            cv2.imwrite(str(folder / name), np.zeros((4, 4, 3), np.uint8))
        assert [p.name for p in list_frame_files(folder)] == ["01.png", "1.png", "2.png", "²1.png"]


def test_a_container_whose_times_restart_keeps_its_header_rate(tmp_path):
    """Matroska / WebM / MPEG-TS record no frame count, so the packets' times give it; two transport streams
    joined end to end restart their times halfway, and those times say nothing about the rate."""
    one = tmp_path / "one.ts"
    with av.open(str(one), "w", format="mpegts") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for frame in moving_square_frames(25, width=64, height=48):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    assert probe(one).frames == 25 and abs(probe(one).fps - 25) < 0.01 and not probe(one).variable_rate
    joined = tmp_path / "joined.ts"
    joined.write_bytes(one.read_bytes() * 2)
    info = probe(joined)
    assert abs(info.fps - 25) < 0.01 and not info.variable_rate, info


@pytest.mark.parametrize("frames", [30, 92])
def test_an_even_rate_is_read_from_the_frame_times_when_the_last_frame_is_shown_short(tmp_path, frames):
    """An mp4 at 30000/1001 fps whose last frame is shown a quarter as long: ffmpeg's mean rate (frames /
    duration) reads 30.74 (30 frames, then called variable) or 30.22 (92 frames, written 0.8% fast with no
    note); the frames' own times are even, at 29.97."""
    from fractions import Fraction

    path = tmp_path / "short.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(30000, 1001))
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"bf": "0"}
        packets = []
        for frame in moving_square_frames(frames, width=64, height=48):
            packets += stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24"))
        packets += stream.encode()
        stream.time_base = Fraction(1, 30000)
        for k, packet in enumerate(packets):   # to a finer time base, the last frame's duration cut to a quarter
            packet.pts, packet.dts = packet.pts * 1001, packet.dts * 1001
            packet.duration, packet.time_base = 1001 if k < len(packets) - 1 else 250, Fraction(1, 30000)
            container.mux(packet)
    with av.open(str(path)) as container:
        assert abs(float(container.streams.video[0].average_rate) - 29.97) > 0.1   # what ffmpeg says
    info = probe(path)
    assert info.frames == frames and abs(info.fps - 30000 / 1001) < 1e-3 and not info.variable_rate, info


def test_a_clip_given_alone_with_a_newline_in_its_name_is_refused_as_a_folder_walk_skips_it(tmp_path):
    clip = write_video(tmp_path / "a\nb.mp4", moving_square_frames(3))
    assert discover(tmp_path).clips == [] and "newline" in discover(tmp_path).skipped[0][1]
    with pytest.raises(BadInput, match=r"input 'a\\nb.mp4': its name holds a newline"):
        discover(clip)


def _damaged_copy(src, dst, packet: int = 10) -> None:
    """``src`` remuxed with one byte flipped in the middle of one packet (a bit error the decoder conceals)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = inp.streams.video[0]
        copy = out.add_stream_from_template(stream)
        for i, pkt in enumerate(p for p in inp.demux(stream) if p.dts is not None):
            data = bytearray(bytes(pkt))
            if i == packet:
                data[len(data) // 2] ^= 0xFF
            new = av.Packet(bytes(data))
            new.pts, new.dts, new.time_base, new.is_keyframe = pkt.pts, pkt.dts, pkt.time_base, pkt.is_keyframe
            new.stream = copy
            out.mux(new)


def test_a_damaged_video_and_a_frame_folder_with_gaps_are_written_with_a_note(tmp_path):
    from privvid.anonymize import anonymize_dataset
    from privvid.config import DetectConfig
    from privvid.io.video import DecodeReport, decode_frames

    good, src = tmp_path / "good.mp4", tmp_path / "in"
    src.mkdir()
    writer = VideoWriter(good, 192, 128, 24)
    for frame in moving_square_frames(24, 192, 128):
        writer.write(frame)
    writer.commit()
    _damaged_copy(good, src / "bad.mp4")
    clean = DecodeReport()
    assert len(list(decode_frames(good, None, None, clean))) == 24 and clean.notes() == []
    folder = src / "frames"
    folder.mkdir()
    for i, frame in zip((1, 2, 3, 7, 8, 9), moving_square_frames(6)):
        cv2.imwrite(str(folder / f"img_{i:05d}.png"), frame if i != 8 else cv2.resize(frame, (48, 32)))
    report = DecodeReport()
    frames = list(decode_frames(folder, None, None, report))
    assert {f.shape for f in frames} == {(64, 96, 3)}, "a clip has one size: the first frame's"
    assert report.other_size == 1 and report.gaps == [("img_00003.png", "img_00007.png")]
    from privvid.io.video import numbering_gaps   # a folder of every 5th frame steps by 5: no gap there

    assert numbering_gaps([Path(f"f_{i:06d}.jpg") for i in (0, 5, 10, 15, 30, 35)]) == [("f_000015.jpg", "f_000030.jpg")]

    cfg = AnonymizeConfig(mode="blur", detect=DetectConfig(backend="fakes:ColorKeyDetector", dilate=3, temporal=1))
    summary = anonymize_dataset(src, tmp_path / "out", cfg)
    assert summary.count("done") == 2
    notes = {o.relpath: " ".join(o.notes) for o in summary.outcomes}
    assert "damaged input: the decoder flagged" in notes["bad"]
    assert "1 frame file(s) of another size" in notes["frames"] and "img_00003.png -> img_00007.png" in notes["frames"]


def test_links_that_lead_nowhere_beside_a_video_are_counted_once_among_the_ignored(tmp_path):
    folder = tmp_path / "in" / "cls"
    write_video(folder / "a.mp4", moving_square_frames(4))
    (folder / "loop").symlink_to("loop")
    (folder / "dangling").symlink_to(tmp_path / "nowhere")
    found = discover(tmp_path / "in")
    assert [c.relpath for c in found.clips] == ["cls/a"]
    assert sorted(p.name for p in found.ignored) == ["dangling", "loop"]


def test_a_variable_rate_clip_is_resampled_by_its_frames_own_times(tmp_path):
    """Ten frames 100 ms apart, then twenty 25 ms apart: about 1.5 s. At --fps 20 the first second shows each
    slow frame twice and the last half second every second fast one (taking the frames as evenly spaced at the
    mean rate, as before, gave all 30 once: the slow second played in half a second)."""
    path = write_slow_then_fast(tmp_path / "vfr.mp4")
    info = probe(path)
    assert info.variable_rate and info.frames == 30, info
    shown = [int(round(float(f.mean()) / 8)) for f in read_frames(path, fps=20, info=info)]
    # the last frame is shown for one step of the mean rate (30 frames in 1.53 s here), so at 1.5 s too
    assert shown == [i // 2 for i in range(20)] + list(range(10, 30, 2)) + [29], shown
    # without --fps every frame is kept, once, at the mean rate
    assert [int(round(float(f.mean()) / 8)) for f in read_frames(path, info=info)] == list(range(30))


def test_an_mp4_cut_before_its_index_is_named_as_such(tmp_path):
    """A recording stopped before the camera wrote the index (the 'moov' box, at the end) opens in no player;
    it is told apart from a file that is no video at all."""
    whole = write_video(tmp_path / "whole.mp4", moving_square_frames(30))
    data = whole.read_bytes()
    assert data.index(b"moov") > data.index(b"mdat")   # written index last, as cameras do
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: data.index(b"moov") - 100])
    with pytest.raises(BadInput, match=r"no index \(its 'moov' box is missing\)"):
        probe(cut)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    with pytest.raises(BadInput, match="not a video container"):
        probe(text)


def test_resampling_by_time_holds_a_frame_at_most_five_seconds_and_places_untimed_first_frames():
    """A jump in a clip's times (a broken or restarted timestamp) held one frame for the whole gap: 1000 s made
    10,000 frames. A first frame with no time was taken for time 0 while the others start at 10 s, so it was
    held for 10 s. Backwards times follow their predecessor by a mean step."""
    from privvid.io.video import GAP_CAP_S, DecodeReport, _resample_by_time

    def run(times, last=None):
        report = DecodeReport()

        def frames():
            for i, t in enumerate(times):
                report.times.append(t)
                report.last_duration = last
                yield i

        return list(_resample_by_time(frames(), report, 10.0, 10.0))

    assert len(run([0.0, 0.1, 1000.0])) == 2 + int(GAP_CAP_S * 10)
    assert run([None, 10.0, 10.1, 10.2]) == [0, 1, 2, 3]
    assert run([0.0, 0.1, 0.05, 0.3]) == [0, 1, 2, 3]
    assert run([0.0, 0.1, 0.2], last=0.5) == [0, 1, 2, 2, 2, 2, 2]   # the last frame for its own duration
    assert run([]) == []
