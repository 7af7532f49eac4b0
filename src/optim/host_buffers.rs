//! Copying a device's f32 buffers to and from the host (checkpoints, and gradient
//! clipping where the device has nothing better).

use dfdx::prelude::*;

/// A device's f32 buffer.
pub type Buffer<D> = <D as Storage<f32>>::Vec;

/// Copies device buffers to and from the host, for checkpoints.
pub trait HostBuffers: Device<f32> {
    fn download(&self, buf: &Buffer<Self>) -> Result<Vec<f32>, Self::Err>;
    fn upload(&self, values: &[f32]) -> Result<Buffer<Self>, Self::Err>;

    /// The sum of squares of `buf`, accumulated in f64 (gradient clipping's norm). By
    /// default through the host: one copy of the buffer.
    fn sum_squares(&self, buf: &Buffer<Self>) -> Result<f64, Self::Err> {
        Ok(sum_squares(&self.download(buf)?))
    }

    /// Multiplies `buf` by `factor` (gradient clipping). By default through the host.
    fn scale(&self, buf: &mut Buffer<Self>, factor: f32) -> Result<(), Self::Err> {
        let mut values = self.download(buf)?;
        values.iter_mut().for_each(|v| *v *= factor);
        *buf = self.upload(&values)?;
        Ok(())
    }
}

fn sum_squares(values: &[f32]) -> f64 {
    values.iter().map(|&v| f64::from(v) * f64::from(v)).sum()
}

impl HostBuffers for Cpu {
    fn download(&self, buf: &Buffer<Self>) -> Result<Vec<f32>, Self::Err> {
        Ok(buf.to_vec())
    }

    fn upload(&self, values: &[f32]) -> Result<Buffer<Self>, Self::Err> {
        let mut buf = <Self as Storage<f32>>::try_alloc_len(self, values.len())?;
        buf.copy_from_slice(values);
        Ok(buf)
    }

    fn sum_squares(&self, buf: &Buffer<Self>) -> Result<f64, Self::Err> {
        Ok(sum_squares(buf))
    }

    fn scale(&self, buf: &mut Buffer<Self>, factor: f32) -> Result<(), Self::Err> {
        buf.iter_mut().for_each(|v| *v *= factor);
        Ok(())
    }
}

#[cfg(feature = "cuda")]
impl HostBuffers for Cuda {
    fn download(&self, buf: &Buffer<Self>) -> Result<Vec<f32>, Self::Err> {
        Ok(buf.device().dtoh_sync_copy(buf)?)
    }

    fn upload(&self, values: &[f32]) -> Result<Buffer<Self>, Self::Err> {
        let mut buf = <Self as Storage<f32>>::try_alloc_len(self, values.len())?;
        buf.device().htod_sync_copy_into(values, &mut *buf)?;
        Ok(buf)
    }
}
