from setuptools import find_packages, setup

setup(
    name="caffe-multilabel-softmax",
    version="0.1.0",
    description="pycaffe layers: softmax cross-entropy with multi-label, real-valued targets",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="BSD-2-Clause",
    packages=find_packages(include=["python_layers", "python_layers.*"]),
    package_data={"python_layers.loss.cuda": ["kernels.cu"]},  # compiled by CuPy at run time
    python_requires=">=3.9",
    # A pycaffe from a distribution (Debian 11, Ubuntu) needs numpy<2 and protobuf<4:
    # pip install -c constraints/system-caffe.txt . (docs/debian.md)
    install_requires=["numpy>=1.26", "numba>=0.60", "protobuf>=3.20", "six", "tqdm>=4.50"],
    extras_require={
        "images": ["pillow>=9.1"],  # Image.Resampling (Debian 11 has 8.1: the venv gets a newer)
        "plots": ["matplotlib>=3.3"],  # evaluate --plot
        "gpu": ["cupy-cuda13x>=13.6"],  # the GPU engine (CUDA 13 driver, the GPU build of Caffe)
    },
    entry_points={
        "console_scripts": [
            *(
                f"multilabel-{name}=python_layers.tools.{name}:console"
                for name in ("lists", "deploy", "evaluate", "predict")
            ),
            "multilabel-caffe=python_layers.tools.caffe_tool:console",
        ]
    },
)
