"""TensorRT on the box: engine keys, engine build, and the static readiness check. tensorrt is imported lazily."""
