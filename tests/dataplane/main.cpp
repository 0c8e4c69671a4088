// The dataplane suite's main: one EAL for the whole binary, without hugepages or PCI devices.
#include <gtest/gtest.h>

#include "dataplane/eal.hpp"

int main(int argc, char** argv) {
    testing::InitGoogleTest(&argc, argv);
    amt::Eal eal({"--no-huge", "-m", "512", "--no-shconf", "--no-pci", "--log-level=*:error"});
    return RUN_ALL_TESTS();
}
