//! vnn placeholder
