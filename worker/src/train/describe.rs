//! What a run says of itself: the environment it ran in (device, libtorch, speed switches,
//! precision), recorded in its result, and an epoch's line in the log.

use gridsweep_proto::result::{Environment, EpochMetrics};
use tch::Device;

use crate::layout::MemoryFormat;
use crate::models::GridExec;
use crate::recipe::{ConvPrecision, Precision};

/// The device and software of this process, and the speed switches (as the network ran them)
/// and precision the job ran with.
pub fn environment(
    device: Device,
    deterministic: bool,
    grid_exec: GridExec,
    memory_format: MemoryFormat,
    precision: Precision,
) -> Environment {
    let report = crate::devices::DeviceReport::probe();
    let (name, label) = match device {
        Device::Cuda(i) => (
            report.cuda_devices.get(i).map_or_else(|| "unknown GPU".to_owned(), |d| d.name.clone()),
            format!("cuda:{i}"),
        ),
        _ => (format!("cpu, {} threads", tch::get_num_threads()), "cpu".to_owned()),
    };
    Environment {
        device: label,
        device_name: name,
        libtorch_version: report.libtorch_version,
        cuda_version: device.is_cuda().then(tch::utils::version_cudart),
        cudnn_benchmark: device.is_cuda() && !deterministic,
        deterministic,
        grid_exec: Some(grid_exec),
        memory_format: Some(memory_format),
        tf32: Some(device.is_cuda() && precision.conv == ConvPrecision::Tf32),
    }
}

/// An epoch's metrics on one line, in aligned columns, for the log: `epoch    3/300  lr 0.1000
/// train loss 1.2345 acc  55.10%  test loss 1.3456 acc  52.30%    12.3s     4200 img/s`.
pub fn progress_line(m: &EpochMetrics, epochs: u32) -> String {
    let loss = |l: Option<f64>| l.map_or_else(|| "   nan".to_owned(), |l| format!("{l:.4}"));
    format!(
        "epoch {:>4}/{epochs}  lr {:.4}  train loss {} acc {:6.2}%  test loss {} acc {:6.2}%  {:6.1}s  {:7.0} img/s",
        m.epoch,
        m.lr,
        loss(m.train_loss),
        m.train_acc,
        loss(m.test_loss),
        m.test_acc,
        m.seconds,
        m.images_per_s,
    )
}
