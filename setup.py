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
    install_requires=["numpy>=1.26", "numba>=0.60", "protobuf>=3.20", "six"],
    extras_require={
        "images": ["pillow>=10.1"],
        "gpu": ["cupy-cuda13x>=13.6"],  # the GPU engine (CUDA 13 driver, the GPU build of Caffe)
    },
)
