# Minimal YOLOX model, loss and augmentation code, vendored from the `yolox` 0.3.0 package
# (Megvii Inc., https://github.com/Megvii-BaseDetection/YOLOX), Apache License 2.0.
# Changes for roadwatch: imports made package-relative, CUDA-only calls removed (CPU training),
# boxes.py trimmed to the helpers used here (no torchvision). See NOTICE in this folder.
from .yolo_head import YOLOXHead
from .yolo_pafpn import YOLOPAFPN
from .yolox import YOLOX

__all__ = ["YOLOX", "YOLOPAFPN", "YOLOXHead"]
