//! Batched augmentation on the training device: random crop from a 4-pixel zero padding,
//! horizontal flip and per-channel normalisation, as tensor operations over the whole batch
//! (no per-image loop). Randomness comes from libtorch's generator, which training seeds per
//! epoch from the job seed.

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

/// Per-channel normalisation constants on one device.
#[derive(Debug)]
pub struct Normalizer {
    mean: Tensor,
    inv_std: Tensor,
}

impl Normalizer {
    /// The CIFAR-10 constants on `device`.
    pub fn new(device: Device) -> Self {
        let mean = Tensor::from_slice(&MEAN).to_kind(Kind::Float).view([1, 3, 1, 1]).to_device(device);
        let inv_std =
            Tensor::from_slice(&STD.map(|s| 1.0 / s)).to_kind(Kind::Float).view([1, 3, 1, 1]).to_device(device);
        Normalizer { mean, inv_std }
    }

    /// u8 images to normalised floats.
    pub fn apply(&self, images_u8: &Tensor) -> Tensor {
        (images_u8.to_kind(Kind::Float) / 255.0 - &self.mean) * &self.inv_std
    }
}

/// Random crops of `images` (u8 or float, `[B, C, H, W]`) from a zero padding of `pad` pixels:
/// pad, draw each image's offsets, and gather rows then columns.
pub fn random_crop(images: &Tensor, pad: i64) -> Tensor {
    let (b, c, h, w) = images.size4().expect("a batch of images");
    let device = images.device();
    let padded = images.constant_pad_nd([pad, pad, pad, pad]);
    let offsets = Tensor::randint(2 * pad + 1, [b, 2], (Kind::Int64, device));
    let rows = offsets.select(1, 0).view([b, 1]) + Tensor::arange(h, (Kind::Int64, device)).view([1, h]);
    let cols = offsets.select(1, 1).view([b, 1]) + Tensor::arange(w, (Kind::Int64, device)).view([1, w]);
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

/// A normalised, augmented training batch of the images at `idx`.
pub fn train_batch(images_u8: &Tensor, idx: &Tensor, aug: Augment, norm: &Normalizer) -> Tensor {
    let mut x = images_u8.index_select(0, idx);
    if aug.crop_padding > 0 {
        x = random_crop(&x, aug.crop_padding);
    }
    if aug.flip {
        x = random_flip(&x);
    }
    norm.apply(&x)
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
