import KernelRules

/// The virtual devices, as a source of errors.
public enum DeviceModelLayer: ErrorLayer {}

/// The device-model layer's error: an errno, the rule that decides it (usually `.none`: a model
/// that does not exist is the simulator's own input error), and a message naming the model.
public typealias DeviceModelError = SimulationError<DeviceModelLayer>
