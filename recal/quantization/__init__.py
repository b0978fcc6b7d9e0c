"""Post-training int8 quantization of recal's classification networks (``python -m recal.quantize``).

The flow is torch.ao's FX graph mode (``prepare_fx`` / ``convert_fx`` / ``prepare_qat_fx``)
for the x86 backend: it runs real int8 kernels in eager mode and lets a
``QConfigMapping`` choose per module what stays float, which is what the study needs
(gates in float or int8, SRM's style statistics in float). PT2E
(``prepare_pt2e`` + ``X86InductorQuantizer``, in torchao) leaves a gate's broadcast
multiply in float32 and needs an inductor compile for int8 speed, so it is not used.

- :mod:`~recal.quantization.variants`: the study's variants and their QConfigMappings;
- :mod:`~recal.quantization.style_split`: SRM written with its style statistics as a
  submodule, so a mapping can keep them float;
- :mod:`~recal.quantization.flow`: fuse, calibrate, convert (and the QAT fine-tune);
- :mod:`~recal.quantization.evaluation`: fp32 vs int8 accuracy and agreement on one pass;
- :mod:`~recal.quantization.latency`, :mod:`~recal.quantization.sensitivity`,
  :mod:`~recal.quantization.study` (the tables and figures the command writes).
"""
