// Row sharing for pooling and normalization (see Kernel+Rows.swift).

extension MaxPoolKernel: PlainRowWiseKernel {}
extension BatchNormKernel: PlainRowWiseKernel {}
