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
    # On Python < 3.11 every pycaffe we know (Debian 11's, Ubuntu 22.04's, ours built there) is
    # compiled against numpy 1.x and protoc 3.x: numpy 2 fails "_ARRAY_API not found", protobuf
    # 4 "Descriptors cannot be created directly". So a plain `pip install .` keeps them below.
    install_requires=[
        "numpy>=1.26,<2; python_version < '3.11'",
        "numpy>=1.26; python_version >= '3.11'",
        "protobuf>=3.20,<4; python_version < '3.11'",
        "protobuf>=3.20; python_version >= '3.11'",
        "numba>=0.60",
        "six",
        "tqdm>=4.50",
    ],
    extras_require={
        # OpenCV decodes and resizes, as Caffe's ImageData; 4.x (5 dropped readNetFromCaffe);
        # below 3.11 the last wheels built for numpy 1.x
        "images": [
            "opencv-python-headless>=4.5,<4.11; python_version < '3.11'",
            "opencv-python-headless>=4.5,<5; python_version >= '3.11'",
            "lmdb>=1.4",
        ],
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
