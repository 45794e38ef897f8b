//! Batched augmentation on the training device: random crop from a 4-pixel zero padding,
//! horizontal flip and per-channel normalisation, as tensor operations over the whole batch
//! (no per-image loop). Randomness comes from libtorch's generator, which training seeds per
//! epoch from the job seed. What does not change between batches is made once: the row and
//! column index ramp of the crop (`Augmenter`) and the normalisation's per-channel scale and
//! shift (`Normalizer`), so that normalising is one fused multiply-add over the u8 pixels.

use tch::{Device, Kind, Tensor};

/// CIFAR-10 training-set channel means and standard deviations (of pixel / 255).
pub const MEAN: [f64; 3] = [0.4914, 0.4822, 0.4465];
/// See MEAN.
pub const STD: [f64; 3] = [0.2470, 0.2435, 0.2616];

/// What to apply to a training batch.
#[derive(Clone, Copy, Debug)]
pub struct Augment {
    /// Zero padding for the random crop; 0 disables the crop.
    pub crop_padding: i64,
    /// Random horizontal flip with probability 1/2.
    pub flip: bool,
}

/// Per-channel normalisation constants on one device: (x / 255 - mean) / std folded into
/// x * scale + shift, computed in f64 and rounded once to f32.
#[derive(Debug)]
pub struct Normalizer {
    /// 1 / (255 std) per channel, `[1, 3, 1, 1]` f32.
    scale: Tensor,
    /// -mean / std per channel, `[1, 3, 1, 1]` f32.
    shift: Tensor,
}

impl Normalizer {
    /// The CIFAR-10 constants on `device`.
    pub fn new(device: Device) -> Self {
        let per_channel =
            |v: [f64; 3]| Tensor::from_slice(&v).to_kind(Kind::Float).view([1, 3, 1, 1]).to_device(device);
        let scale = per_channel([0, 1, 2].map(|c| 1.0 / (255.0 * STD[c])));
        let shift = per_channel([0, 1, 2].map(|c| -MEAN[c] / STD[c]));
        Normalizer { scale, shift }
    }

    /// u8 images to normalised f32: one `addcmul` (shift + x * scale) that reads the u8 pixels
    /// and promotes them to f32 itself (inside the kernel on CUDA; through one temporary cast
    /// on the CPU), where the unfolded formula took four kernels (cast, divide, subtract,
    /// multiply). Within 1e-6 (4 f32 ulps at |x| < 4) of the unfolded formula (tested).
    pub fn apply(&self, images_u8: &Tensor) -> Tensor {
        self.shift.addcmul(images_u8, &self.scale)
    }
}

/// Augmentation for one training pass, with the index ramp (0, 1, ..., side - 1) that the crop
/// adds each image's offsets to, made once on the device instead of twice per batch.
#[derive(Debug)]
pub struct Augmenter {
    /// What to apply.
    aug: Augment,
    /// i64 `[side]` on the training device; rows and columns of a CIFAR image (32) are narrows
    /// of it.
    ramp: Tensor,
}

/// The side of a CIFAR-10 image, the ramp's length.
const SIDE: i64 = 32;

impl Augmenter {
    /// `aug` on `device`.
    pub fn new(aug: Augment, device: Device) -> Self {
        Augmenter { aug, ramp: Tensor::arange(SIDE, (Kind::Int64, device)) }
    }

    /// A normalised, augmented training batch of the images at `idx`.
    pub fn batch(&self, images_u8: &Tensor, idx: &Tensor, norm: &Normalizer) -> Tensor {
        let mut x = images_u8.index_select(0, idx);
        if self.aug.crop_padding > 0 {
            x = crop_with(&x, self.aug.crop_padding, &self.ramp);
        }
        if self.aug.flip {
            x = random_flip(&x);
        }
        norm.apply(&x)
    }
}

/// Random crops of `images` (u8 or float, `[B, C, H, W]`) from a zero padding of `pad` pixels:
/// pad, draw each image's offsets, and gather rows then columns.
pub fn random_crop(images: &Tensor, pad: i64) -> Tensor {
    let (_, _, h, w) = images.size4().expect("a batch of images");
    crop_with(images, pad, &Tensor::arange(h.max(w), (Kind::Int64, images.device())))
}

/// `random_crop` with the index ramp given (at least as long as the images' height and width;
/// a shorter one is replaced by a new ramp).
fn crop_with(images: &Tensor, pad: i64, ramp: &Tensor) -> Tensor {
    let (b, c, h, w) = images.size4().expect("a batch of images");
    let device = images.device();
    let made;
    let ramp = if ramp.size()[0] >= h.max(w) {
        ramp
    } else {
        made = Tensor::arange(h.max(w), (Kind::Int64, device));
        &made
    };
    let padded = images.constant_pad_nd([pad, pad, pad, pad]);
    let offsets = Tensor::randint(2 * pad + 1, [b, 2], (Kind::Int64, device));
    let rows = offsets.select(1, 0).view([b, 1]) + ramp.narrow(0, 0, h).view([1, h]);
    let cols = offsets.select(1, 1).view([b, 1]) + ramp.narrow(0, 0, w).view([1, w]);
    let rows = rows.view([b, 1, h, 1]).expand([b, c, h, w + 2 * pad], false);
    let cols = cols.view([b, 1, 1, w]).expand([b, c, h, w], false);
    padded.gather(2, &rows, false).gather(3, &cols, false)
}

/// Flips each image left-right with probability 1/2.
pub fn random_flip(images: &Tensor) -> Tensor {
    let b = images.size()[0];
    let mask = Tensor::rand([b], (Kind::Float, images.device())).lt(0.5).view([b, 1, 1, 1]);
    images.flip([3]).where_self(&mask, images)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_are_windows_of_the_padded_image() {
        tch::manual_seed(0);
        let img = Tensor::arange(2 * 3 * 8 * 8, (Kind::Int64, Device::Cpu)).view([2, 3, 8, 8]) + 1;
        let crop = random_crop(&img, 2);
        assert_eq!(crop.size(), [2, 3, 8, 8]);
        let padded = img.constant_pad_nd([2, 2, 2, 2]);
        for n in 0..2 {
            let found =
                (0..5).any(|dy| (0..5).any(|dx| padded.get(n).narrow(1, dy, 8).narrow(2, dx, 8).equal(&crop.get(n))));
            assert!(found, "image {n} is not a window of its padding");
        }
    }

    #[test]
    fn flip_mirrors_or_keeps_each_image() {
        tch::manual_seed(1);
        let img = Tensor::rand([64, 3, 4, 4], (Kind::Float, Device::Cpu));
        let out = random_flip(&img);
        let mut flipped = 0;
        for n in 0..64 {
            let (o, i) = (out.get(n), img.get(n));
            if o.equal(&i.flip([2])) {
                flipped += 1;
            } else {
                assert!(o.equal(&i));
            }
        }
        assert!((16..=48).contains(&flipped), "{flipped} of 64 flipped");
    }

    /// The augmentation as it was before the ramp and the folded constants: crop with fresh
    /// ramps, flip, then cast, divide, subtract and multiply.
    fn unfolded(images_u8: &Tensor, idx: &Tensor, aug: Augment) -> Tensor {
        let mut x = images_u8.index_select(0, idx);
        if aug.crop_padding > 0 {
            x = random_crop(&x, aug.crop_padding);
        }
        if aug.flip {
            x = random_flip(&x);
        }
        let mean = Tensor::from_slice(&MEAN).to_kind(Kind::Float).view([1, 3, 1, 1]);
        let inv_std = Tensor::from_slice(&STD.map(|s| 1.0 / s)).to_kind(Kind::Float).view([1, 3, 1, 1]);
        (x.to_kind(Kind::Float) / 255.0 - mean) * inv_std
    }

    #[test]
    fn batches_match_the_unfolded_pipeline() {
        let images = Tensor::randint(256, [16, 3, 32, 32], (Kind::Int64, Device::Cpu)).to_kind(Kind::Uint8);
        let idx = Tensor::from_slice(&[3i64, 0, 15, 7, 7, 9]);
        let norm = Normalizer::new(Device::Cpu);
        for aug in [Augment { crop_padding: 4, flip: true }, Augment { crop_padding: 0, flip: false }] {
            tch::manual_seed(5);
            let new = Augmenter::new(aug, Device::Cpu).batch(&images, &idx, &norm);
            tch::manual_seed(5);
            let old = unfolded(&images, &idx, aug);
            assert_eq!(new.kind(), Kind::Float);
            // The same crops and flips; the folded normalisation rounds differently, by at most
            // a few f32 ulps of values below 3.
            let diff = (&new - &old).abs().max().double_value(&[]);
            assert!(diff <= 1e-6, "{aug:?}: {diff}");
        }
        // Every u8 value of every channel.
        let all = Tensor::arange(256, (Kind::Int64, Device::Cpu))
            .to_kind(Kind::Uint8)
            .view([1, 1, 1, 256])
            .expand([1, 3, 1, 256], false);
        let old = unfolded(&all, &Tensor::from_slice(&[0i64]), Augment { crop_padding: 0, flip: false });
        let diff = (norm.apply(&all) - old).abs().max().double_value(&[]);
        assert!(diff <= 1e-6, "{diff}");
    }

    #[test]
    fn a_short_ramp_is_replaced() {
        tch::manual_seed(2);
        let img = Tensor::arange(2 * 3 * 40 * 40, (Kind::Int64, Device::Cpu)).view([2, 3, 40, 40]);
        let a = crop_with(&img, 2, &Tensor::arange(8, (Kind::Int64, Device::Cpu)));
        tch::manual_seed(2);
        assert!(a.equal(&random_crop(&img, 2)));
    }

    #[test]
    fn normalisation_is_per_channel() {
        let norm = Normalizer::new(Device::Cpu);
        let x = Tensor::full([1, 3, 2, 2], 255, (Kind::Uint8, Device::Cpu));
        let y = norm.apply(&x);
        for c in 0..3 {
            let v = y.double_value(&[0, c as i64, 1, 1]);
            assert!((v - (1.0 - MEAN[c]) / STD[c]).abs() < 1e-5);
        }
    }
}
