"""Spoken-digit audio: checked WAV reading, additive noise at a given SNR and
log-mel spectrograms resized to small square images (S-MNIST's 28x28 audio
input, MILES Sec. IV-A; AV-MNIST's noisy audio, Vielzeuf et al. 2018).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import scipy.io.wavfile
import torch

from mmrepro.core.data.storage import DataError, os_error

RATE = 8000


def read_wav(path: Path, rate: int = RATE) -> np.ndarray:
    """Mono 16-bit PCM WAV at ``rate`` Hz as float32 in [-1, 1]; DataError naming the file otherwise
    (a file shorter than its header announces is truncated: an error, not scipy's warning)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", scipy.io.wavfile.WavFileWarning)
            sr, a = scipy.io.wavfile.read(path)
    except scipy.io.wavfile.WavFileWarning as e:
        raise DataError(f"{path} is truncated or damaged ({e}); delete it so that it is fetched again") from e
    except OSError as e:
        raise os_error(path, e, "WAV file") from e
    except Exception as e:  # noqa: BLE001 - scipy raises assorted errors (even UnboundLocalError) on bad headers
        raise DataError(f"{path} is not a readable WAV file ({e!r})") from e
    if sr != rate:
        raise DataError(f"{path} has sample rate {sr} Hz, expected {rate} Hz")
    if a.ndim != 1:
        raise DataError(f"{path} has {a.shape[1]} channels, expected mono")
    if a.dtype != np.int16:
        raise DataError(f"{path} has sample type {a.dtype}, expected 16-bit PCM")
    if a.size == 0:
        raise DataError(f"{path} holds no samples")
    return a.astype(np.float32) / 32768.0


def pad_batch(waves: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad waveforms into (B, L) with their (B,) lengths."""
    lens = torch.tensor([len(w) for w in waves])
    return torch.nn.utils.rnn.pad_sequence([torch.from_numpy(w) for w in waves], batch_first=True), lens


def add_noise(waves: torch.Tensor, lengths: torch.Tensor, snr_db: float, generator: torch.Generator) -> torch.Tensor:
    """White Gaussian noise at signal-to-noise ratio ``snr_db`` per recording (power over its valid samples)."""
    valid = torch.arange(waves.shape[1]) < lengths[:, None]
    power = (waves.square() * valid).sum(1) / lengths
    std = (power / 10 ** (snr_db / 10)).sqrt()
    noise = torch.randn(waves.shape, generator=generator) * std[:, None]
    return (waves + noise) * valid


def hz_to_mel(f: np.ndarray) -> np.ndarray:
    """HTK mel scale: 2595 log10(1 + f/700)."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m: np.ndarray) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    return 700.0 * (10 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(n_mels: int, n_fft: int, rate: int = RATE) -> torch.Tensor:
    """Triangular filters (n_mels, n_fft//2+1), centres equally spaced on the HTK mel scale, peak 1."""
    freqs = np.linspace(0, rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(rate / 2), n_mels + 2))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None] - lo) / (mid - lo)
    down = (hi - freqs[None]) / (hi - mid)
    return torch.from_numpy(np.clip(np.minimum(up, down), 0, None)).float()


def resize_weights(in_sizes: torch.Tensor, out: int, max_in: int) -> torch.Tensor:
    """(B, out, max_in) matrices resizing inputs of lengths ``in_sizes`` (zero-padded to ``max_in``) to ``out``.

    Triangle (bilinear) weights widened by the scale when shrinking, as in
    antialiased bilinear resizing (``F.interpolate(..., antialias=True)``);
    only the first ``in_sizes[b]`` inputs get weight, so padding never leaks in.
    """
    scale = (in_sizes.double() / out)[:, None, None]
    support = scale.clamp_min(1.0)
    centre = scale * (torch.arange(out, dtype=torch.float64)[None, :, None] + 0.5)
    k = torch.arange(max_in, dtype=torch.float64)[None, None]
    w = (1 - ((k + 0.5 - centre) / support).abs()).clamp_min(0) * (k < in_sizes[:, None, None])
    return (w / w.sum(-1, keepdim=True)).float()


def log_mel_images(waves: torch.Tensor, lengths: torch.Tensor, size: int = 28, n_mels: int = 40,
                   n_fft: int = 256, hop: int = 80, top_db: float = 80.0, rate: int = RATE) -> torch.Tensor:
    """(B, 1, size, size) log-mel spectrograms scaled to [0, 1].

    Power STFT (Hann window, ``n_fft``, ``hop``) -> mel filterbank -> dB relative
    to each recording's maximum, floored at ``-top_db`` and mapped to [0, 1];
    only frames whose window ends inside the recording (never touching the
    batch's zero padding) are resized to ``size`` x ``size`` (antialiased
    bilinear, batched; mel axis low to high).
    """
    spec = torch.stft(waves, n_fft, hop_length=hop, window=torch.hann_window(n_fft), center=True,
                      return_complex=True).abs().square()  # (B, F, T)
    mel = torch.einsum("mf,bft->bmt", mel_filterbank(n_mels, n_fft, rate), spec)
    db = 10 * torch.log10(mel.clamp_min(1e-10))
    frames = ((lengths - n_fft // 2) // hop + 1).clamp_min(1)  # frames whose window ends inside the recording
    valid = (torch.arange(db.shape[2]) < frames[:, None])[:, None, :]
    peak = db.masked_fill(~valid, -torch.inf).amax(dim=(1, 2), keepdim=True)
    d = (((db - peak).clamp_min(-top_db) + top_db) / top_db) * valid
    w_mel = resize_weights(torch.tensor([n_mels]), size, n_mels)[0]
    w_time = resize_weights(frames, size, db.shape[2])
    return torch.einsum("om,bmt,bst->bos", w_mel, d, w_time)[:, None].clamp_(0, 1)
